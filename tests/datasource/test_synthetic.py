"""The synthetic generator: deterministic, in the Coveo schema, with learnable sequential structure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recframe.datasource.synthetic import BROWSING_COLUMNS, SESSION_GAP_MS, generate_events, sessions_for_events


@pytest.fixture(scope="module")
def data():
    return generate_events(n_sessions=3000, n_items=400, n_days=21, seed=7)


def _frame(data) -> pd.DataFrame:
    return data.events.to_pandas().astype({c: "object" for c in BROWSING_COLUMNS if c != "server_timestamp_epoch_ms"})


def test_same_seed_same_events_other_seed_differs(data):
    again = generate_events(n_sessions=3000, n_items=400, n_days=21, seed=7)
    assert again.events.equals(data.events)
    assert again.catalogue.equals(data.catalogue)
    other = generate_events(n_sessions=3000, n_items=400, n_days=21, seed=8)
    assert not other.events.equals(data.events)


def test_schema_and_actions(data):
    df = _frame(data)
    assert tuple(df.columns) == BROWSING_COLUMNS
    assert df["session_id_hash"].nunique() == 3000
    assert df["session_id_hash"].str.len().eq(64).all()
    pv = df["event_type"] == "pageview"
    assert pv.any() and df.loc[pv, "product_sku_hash"].isna().all() and df.loc[pv, "product_action"].isna().all()
    assert set(df.loc[~pv, "product_action"]) == {"detail", "add", "purchase", "remove"}
    assert df.loc[~pv, "product_sku_hash"].notna().all()
    assert set(data.catalogue.column_names) == {"product_sku_hash", "category_hash", "price_bucket"}
    assert set(df.loc[~pv, "product_sku_hash"]) <= set(data.catalogue.column("product_sku_hash").to_pylist())


def test_sessions_are_time_ordered_with_gaps_below_30_minutes_over_weeks(data):
    df = _frame(data)
    ts = df["server_timestamp_epoch_ms"]
    gaps = df.groupby("session_id_hash", sort=False)["server_timestamp_epoch_ms"].diff().dropna()
    assert (gaps >= 0).all() and (gaps < SESSION_GAP_MS).all()
    span_days = (ts.max() - ts.min()) / 86_400_000
    assert 19 < span_days < 22
    views = df[df["product_action"] == "detail"].groupby("session_id_hash").size()
    assert 3 < views.mean() < 9 and views.max() > 15


def test_sequential_signal_beats_popularity(data):
    """The most frequent successor of an item predicts the next view far better than the most popular item."""
    df = _frame(data)
    v = df[df["product_action"] == "detail"][["session_id_hash", "product_sku_hash"]]
    nxt = v.groupby("session_id_hash", sort=False)["product_sku_hash"].shift(-1)
    pairs = pd.DataFrame({"cur": v["product_sku_hash"], "nxt": nxt}).dropna()
    top_next = pairs.groupby("cur")["nxt"].agg(lambda s: s.value_counts().iloc[0]).sum() / len(pairs)
    top_pop = pairs["nxt"].value_counts().iloc[0] / len(pairs)
    assert top_next > 0.3
    assert top_pop < 0.1
    # power law: the top 10% of items take a large share of views
    counts = np.sort(v["product_sku_hash"].value_counts().to_numpy())[::-1]
    assert counts[: len(counts) // 10].sum() / counts.sum() > 0.35


def test_sessions_for_events_is_close():
    n = sessions_for_events(50_000)
    rows = generate_events(n_sessions=n, n_items=500, seed=1).events.num_rows
    assert 0.85 * 50_000 < rows < 1.15 * 50_000
