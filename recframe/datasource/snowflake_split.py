"""The data step's query and time split, run inside Snowflake: the client fetches only the splits.

The same rules as :func:`recframe.datasource.session_query.query_split` (the DuckDB path), in
Snowflake SQL: the date window and the length bound select sessions, the test and validation
cut-offs label them (straddlers dropped), the training items are collected and the valid/test events
of items unseen in train are dropped, sessions left shorter than ``min_length`` with them. Only the
labelled sessions of the three splits travel, as Arrow record batches, so the client's memory grows
with the splits, never with the mart, and no local copy of the mart is made. Their lists are
exploded and the unseen items dropped on the client, vectorised: Snowflake's FLATTEN would do it in
the warehouse, but fakesnow (the emulator the tests run against) loses the element order there.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recframe.datasource.session_query import (
    arrays_from_arrow,
    describe_sorted,
    make_frame,
    split_cuts,
    split_label,
    window_clause,
)
from recframe.datasource.split import mark_targets
from recframe.interfaces import DataError

SPLITS = ("train", "valid", "test")


def query_split(
    cur: Any, sequences: str, tenant: str, split: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Train, valid and test frames and the split's stats, selected by Snowflake from ``sequences``
    (the fully qualified ``session_sequences`` model); ``split`` as validated by
    :func:`recframe.datasource.duckdb.validate_split`."""
    s = split
    window, params = window_clause(tenant, s, "to_timestamp_ntz(?)")
    n_sessions, t_end = cur.execute(
        f"select count(*), max(session_end_ms) from {sequences} where {window}", params
    ).fetchall()[0]
    test_cut, valid_cut = split_cuts(n_sessions, t_end, tenant, s)
    labelled = f"""(select session_id, length, items, timestamps, actions,
               {split_label(test_cut, valid_cut)} as split,
               session_start_ms as s, session_end_ms as e
        from {sequences} where {window})"""
    rows = cur.execute(
        f"select coalesce(split, 'straddling'), count(*), sum(length), min(s), max(e) from {labelled} group by 1",
        params,
    ).fetchall()
    by_split = {r[0]: (int(r[1]), int(r[2] or 0), r[3], r[4]) for r in rows}
    if "train" not in by_split:
        raise DataError(
            f"train split is empty: test_days={s['test_days']} + valid_days={s['valid_days']} cover all the data"
        )
    if "test" not in by_split:
        raise DataError(f"test split is empty: no session starts in the last test_days={s['test_days']}")
    bounds = {k: (v[2], v[3]) for k, v in by_split.items() if k in SPLITS}
    if bounds["train"][1] >= bounds["test"][0] or (
        "valid" in bounds and (bounds["valid"][1] >= bounds["test"][0] or bounds["train"][1] >= bounds["valid"][0])
    ):
        raise DataError("split leakage: a later split starts before an earlier one ends")

    # only the labelled sessions travel, ordered by id; their lists arrive as JSON text and are
    # exploded batch by batch (an in-memory DuckDB parses one fetched batch at a time)
    cur.execute(
        f"""select split, session_id, items, timestamps, actions from {labelled}
        where split is not null order by split, session_id""",
        params,
    )
    cols = _explode(cur.fetch_arrow_batches())
    labels = cols.pop("split")
    stats: dict[str, Any] = {
        "query": {"sessions": int(n_sessions), "events": int(sum(by_split.get(k, (0, 0))[1] for k in SPLITS))},
        "straddling_dropped": int(by_split.get("straddling", (0,))[0]),
        "test_cut_ms": test_cut,
        "valid_cut_ms": valid_cut,
    }
    is_train = labels == "train"
    known = pd.unique(cols["item_id"][is_train])
    frames: dict[str, pd.DataFrame] = {}
    for name in SPLITS:
        mask = labels == name
        if name != "train" and s["drop_unseen"]:
            seen = pd.Index(known).get_indexer(cols["item_id"]) >= 0
            unseen = int((mask & ~seen).sum())
            mask &= seen
            sid = cols["session_id"][mask]
            counts = pd.Series(sid).map(pd.Series(sid).value_counts()).to_numpy() if len(sid) else np.zeros(0)
            keep = np.flatnonzero(mask)[counts >= int(s["min_length"])]
            mask = np.zeros(len(labels), dtype=bool)
            mask[keep] = True
        frame = make_frame(
            {
                "session_id": cols["session_id"][mask],
                "item_id": cols["item_id"][mask],
                "ts": np.asarray(cols["ts"][mask], dtype=np.int64),
                "action": cols["action"][mask],
            }
        )
        frames[name] = frame
        if name != "train" and s["drop_unseen"]:
            n_sessions_in, n_events_in, _, _ = by_split.get(name, (0, 0, None, None))
            n_after = frame["session_id"].nunique() if len(frame) else 0
            stats[f"{name}_unseen"] = {
                "unseen_dropped": unseen,
                "short_sessions_dropped": int(n_sessions_in - n_after),
                "events_dropped": int(n_events_in - len(frame)),
            }
    n_known = len(known)
    stats["targets"] = {"mode": s["targets"]}
    for name, frame in frames.items():
        stats[name] = describe_sorted(frame, n_known if name == "train" else None)
        if name != "train":
            frames[name], stats["targets"][name] = mark_targets(frame, s["targets"])
    return frames["train"], frames["valid"], frames["test"], stats


def _explode(tables: Any) -> dict[str, np.ndarray]:
    """Long-format columns (split, session_id, item_id, ts, action) of fetched session rows."""
    import duckdb
    import pyarrow as pa

    parser = duckdb.connect()
    parts = []
    try:
        for table in tables:
            parser.register("_batch", table)
            parts.append(
                parser.execute(
                    """select split, session_id, unnest(from_json(items, '["VARCHAR"]')) as item_id,
                       unnest(from_json(timestamps, '["BIGINT"]')) as ts,
                       unnest(from_json(actions, '["VARCHAR"]')) as action
                    from _batch"""
                ).to_arrow_table()
            )
            parser.unregister("_batch")
    finally:
        parser.close()
    if not parts:
        raise DataError("Snowflake returned no sessions for the splits")
    cols = arrays_from_arrow(pa.concat_tables(parts))
    return {c.lower(): np.asarray(v) for c, v in cols.items()}
