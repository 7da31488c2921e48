"""Ingest into a real DuckDB file: append-only loads, idempotent re-ingest."""

from __future__ import annotations

import duckdb
import pytest

from recframe.datasource.formats import COVEO
from recframe.datasource.synthetic import generate_events
from recframe.datasource.warehouse import fingerprint_params, ingest


@pytest.fixture(scope="module")
def small():
    return generate_events(n_sessions=300, n_items=50, n_days=5, seed=3)


def _counts(con):
    return (
        con.execute("select count(*) from raw.events").fetchall()[0][0],
        con.execute("select count(*) from raw.loads").fetchall()[0][0],
    )


def test_reingest_same_input_is_a_no_op(tmp_path, small):
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    fp = fingerprint_params({"seed": 3})
    first = ingest(con, small.events, COVEO, "shop", fp, items=small.catalogue)
    assert not first.skipped and first.n_rows == small.events.num_rows and first.n_items == 50
    again = ingest(con, small.events, COVEO, "shop", fp, items=small.catalogue)
    assert again.skipped and again.etl_id == first.etl_id
    assert _counts(con) == (small.events.num_rows, 1)
    row = con.execute(
        "select tenant, etl_id, etl_timestamp is not null, event_date is not null, ts_ms from raw.events limit 1"
    ).fetchall()[0]
    assert row[0] == "shop" and row[1] == first.etl_id and row[2] and row[3] and row[4] > 1.5e12


def test_new_input_appends_a_new_load_and_other_tenants_are_separate(tmp_path, small):
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    a = ingest(con, small.events, COVEO, "shop", "fp-a")
    b = ingest(con, small.events, COVEO, "shop", "fp-b")
    c = ingest(con, small.events, COVEO, "other", "fp-a")
    assert len({a.etl_id, b.etl_id, c.etl_id}) == 3 and not c.skipped
    # append-only: nothing was replaced
    assert _counts(con) == (3 * small.events.num_rows, 3)
    # going back to input A is a new load again (A is no longer the current one)
    assert not ingest(con, small.events, COVEO, "shop", "fp-a").skipped
