"""The data step's query and time split, run inside Snowflake: the client fetches only the splits.

The same rules as :func:`recframe.datasource.session_query.query_split` (the DuckDB path), in
Snowflake SQL, as plain SELECTs (CTEs; nothing is written): the date window and the length bound
select sessions, the test and validation cut-offs label them (straddlers dropped), the sessions'
lists are unnested to one row per event, the training items are collected and, with
``drop_unseen``, the valid/test events of items unseen in train are dropped with a semi-join, and
the sessions left shorter than ``min_length`` with them (a window count). Only the surviving events
of the three splits travel, ordered by split, session and position, as Arrow record batches, so the
client's memory grows with the splits, never with the mart, and no local copy of the mart is made.
The unseen counts (and the number of training items) come from one aggregate query over the same
CTEs before the fetch; the dropped events themselves never leave the warehouse.

The lists are unnested without ``LATERAL FLATTEN``: each session is joined to the positions
``0 .. length - 1`` (a ``GENERATOR`` numbered with ``ROW_NUMBER``, joined through the distinct
lengths) and its elements are read with ``GET(list, position)``, so an event's position is the
number that selected it, never an order the warehouse may or may not keep (fakesnow, the emulator
the tests run against, numbers a correlated FLATTEN's ``INDEX`` out of step with its values). The
item and action elements travel as their JSON text (``TO_JSON``: the same text on Snowflake and on
fakesnow, where a variant cast to VARCHAR keeps its quotes) and are decoded on the client once per
distinct value per batch.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from recframe.datasource.session_query import (
    Coded,
    arrays_from_arrow,
    describe_sorted,
    make_frame,
    split_cuts,
    split_label,
    window_clause,
)
from recframe.datasource.split import mark_targets
from recframe.events import categorical_ids
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
    n_sessions, t_end, max_length = cur.execute(
        f"select count(*), max(session_end_ms), max(length) from {sequences} where {window}", params
    ).fetchall()[0]
    test_cut, valid_cut = split_cuts(n_sessions, t_end, tenant, s)
    labelled = f"""select session_id, length, items, timestamps, actions,
               {split_label(test_cut, valid_cut)} as split,
               session_start_ms as s, session_end_ms as e
        from {sequences} where {window}"""
    rows = cur.execute(
        f"select coalesce(split, 'straddling'), count(*), sum(length), min(s), max(e) from ({labelled}) group by 1",
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

    drop_unseen = bool(s["drop_unseen"])
    ctes = event_ctes(labelled, int(max_length), int(s["min_length"]), drop_unseen)
    stats: dict[str, Any] = {
        "query": {"sessions": int(n_sessions), "events": int(sum(by_split.get(k, (0, 0))[1] for k in SPLITS))},
        "straddling_dropped": int(by_split.get("straddling", (0,))[0]),
        "test_cut_ms": test_cut,
        "valid_cut_ms": valid_cut,
    }
    n_known = None
    unseen: dict[str, int] = {}
    if drop_unseen:  # counts only: the unseen events themselves never leave the warehouse
        counted = cur.execute(
            f"""{ctes}
            select split, count(*) from marked where not seen group by split
            union all select '(known)', count(*) from known""",
            params,
        ).fetchall()
        unseen = {name: int(n) for name, n in counted}
        n_known = unseen.pop("(known)")
    cur.execute(
        f"{ctes} select split, session_id, item_id, ts, action from kept order by split, session_id, pos", params
    )
    cols = fetch_events(cur.fetch_arrow_batches())
    labels = cols.pop("split")
    frames: dict[str, pd.DataFrame] = {}
    for name in SPLITS:
        rows_of = split_rows(labels, name)
        frame = make_frame(
            {
                "session_id": cols["session_id"][rows_of],
                "item_id": cols["item_id"][rows_of],
                "ts": np.asarray(cols["ts"][rows_of], dtype=np.int64),
                "action": cols["action"][rows_of],
            }
        )
        frames[name] = frame
        if name != "train" and drop_unseen:
            n_sessions_in, n_events_in, _, _ = by_split.get(name, (0, 0, None, None))
            n_after = frame["session_id"].nunique() if len(frame) else 0
            stats[f"{name}_unseen"] = {
                "unseen_dropped": unseen.get(name, 0),
                "short_sessions_dropped": int(n_sessions_in - n_after),
                "events_dropped": int(n_events_in - len(frame)),
            }
    stats["targets"] = {"mode": s["targets"]}
    for name, frame in frames.items():
        frame = frames[name] = categorical_ids(frame)
        stats[name] = describe_sorted(frame, n_known if name == "train" else None)
        if name != "train":
            frames[name], stats["targets"][name] = mark_targets(frame, s["targets"])
    return frames["train"], frames["valid"], frames["test"], stats


def event_ctes(labelled: str, max_length: int, min_length: int, drop_unseen: bool) -> str:
    """The WITH clause over ``labelled`` (a SELECT of the window's sessions with their ``split``
    label) ending in ``kept``: one row per surviving event (split, session_id, pos, item_id, ts,
    action; items and actions as JSON text). With ``drop_unseen`` it also defines ``known`` (the
    training items) and ``marked`` (every event, ``seen`` false for a valid/test event whose item
    is not in ``known``).

    Positions come from a generator numbered by ROW_NUMBER (SEQ4 alone may leave gaps), joined to
    the distinct lengths first (at most ``max_length`` of them), so the sessions join on equality."""
    ctes = f"""with labelled as ({labelled}),
    lengths as (select distinct length from labelled where split is not null),
    positions as (
        select l.length, g.pos
        from lengths as l
        inner join (
            select row_number() over (order by seq4()) - 1 as pos
            from table(generator(rowcount => {int(max_length)}))
        ) as g on g.pos < l.length
    ),
    events as (
        select ls.split, ls.session_id, p.pos,
               to_json(get(ls.items, p.pos)) as item_id,
               get(ls.timestamps, p.pos)::bigint as ts,
               to_json(get(ls.actions, p.pos)) as action
        from labelled as ls
        inner join positions as p on ls.length = p.length
        where ls.split is not null
    )"""
    if not drop_unseen:
        return f"{ctes}, kept as (select * from events)"
    return f"""{ctes},
    known as (select distinct item_id from events where split = 'train'),
    marked as (
        select ev.*, ev.split = 'train' or k.item_id is not null as seen
        from events as ev
        left join known as k on ev.item_id = k.item_id
    ),
    kept as (
        select * from marked
        where seen
        qualify split = 'train' or count(*) over (partition by session_id) >= {int(min_length)}
    )"""


def fetch_events(tables: Any) -> dict[str, np.ndarray]:
    """The fetched events as numpy columns (split, session_id, item_id, ts, action), one Python
    ``str`` per distinct value per batch; the JSON-text items and actions decoded per distinct value."""
    fetched = arrays_from_arrow((batch for table in tables for batch in table.to_batches()), coded=True)
    cols = {c.lower(): v for c, v in fetched.items()}
    if not cols:
        raise DataError("Snowflake returned no events for the splits")
    out: dict[str, np.ndarray] = {}
    for name, values in cols.items():
        if not isinstance(values, Coded):
            out[name] = np.asarray(values)
            continue
        if name in ("item_id", "action"):
            decoded = np.empty(len(values.categories), dtype=object)
            decoded[:] = [_decode(c) for c in values.categories]
            values = Coded(values.codes, decoded)
        out[name] = values.values()
    return out


def _decode(text: str | None) -> str | None:
    return None if text is None else json.loads(text)


def split_rows(labels: np.ndarray, name: str) -> slice | np.ndarray:
    """The rows labelled ``name``: a slice (no copy) when they are contiguous, as ``order by split`` makes them."""
    rows = np.flatnonzero(labels == name)
    if not len(rows):
        return slice(0, 0)
    if rows[-1] - rows[0] + 1 == len(rows):
        return slice(int(rows[0]), int(rows[-1]) + 1)
    return rows
