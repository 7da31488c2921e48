"""The split's SQL on Snowflake (a real fakesnow server and the real connector) against the DuckDB
path, on hand-made ``session_sequences`` rows: valid/test events of items unseen in train are dropped
in the warehouse, sessions left too short with them, and only the surviving events are fetched."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("snowflake.connector")
pytest.importorskip("fakesnow")

import snowflake.connector.cursor as sf_cursor  # noqa: E402

from recframe.datasource import session_query, snowflake_split  # noqa: E402
from recframe.datasource.duckdb import validate_split  # noqa: E402
from recframe.datasource.schema import SESSION_SEQUENCES, column_sql  # noqa: E402
from recframe.datasource.session_query import ACTION_OF_RANK  # noqa: E402
from recframe.datasource.split import DAY_MS  # noqa: E402
from tests.datasource.test_snowflake_source import _deadline, _source  # noqa: E402
from tests.datasource.test_snowflake_source import fakesnow_port as fakesnow_port  # noqa: E402, F401

pytestmark = pytest.mark.snowflake

T0 = 1_704_067_200_000  # 2024-01-01
H = 3_600_000
TABLE = '"RECFRAME"."PUBLIC".SESSION_SEQUENCES'
#: odd SKUs on purpose: quotes, a backslash, a slash and non-ASCII travel as JSON text and come back exact
ODD = 'sku "q"/\\é'

#: (session_id, start ms, [(item, action), ...]); events one minute apart. Train ends on day 0,
#: valid is day 1 + 5 h, test day 3 (t_end = day 3 + 1 h, so the test cut is day 2 + 1 h and the
#: validation cut day 1 + 1 h). Items are listed out of alphabetical order so that any loss of list
#: order changes the result.
SESSIONS = [
    ("tr-2", T0, [("c", "detail"), ("a", "add"), (ODD, "detail")]),
    ("tr-1", T0 + H, [("b", "detail"), ("c", "purchase"), ("d", "detail")]),
    ("va-1", T0 + DAY_MS + 5 * H, [("a", "detail"), ("x", "add"), ("b", "purchase")]),  # x unseen
    ("va-2", T0 + DAY_MS + 6 * H, [("x", "detail"), ("y", "detail"), ("a", "add")]),  # one left: dropped
    ("te-3", T0 + 3 * DAY_MS, [("d", "detail"), ("c", "add")]),  # untouched
    ("te-1", T0 + 3 * DAY_MS + 10, [("c", "detail"), ("z", "detail"), ("d", "add"), (ODD, "add")]),  # z unseen
    ("te-2", T0 + 3 * DAY_MS + H - 60_000, [("z", "detail"), ("w", "detail")]),  # all unseen: dropped
]
#: what survives, session by session in id order, (item, action, ts offset in minutes) per event
EXPECTED = {
    "train": {"tr-1": ["b", "c", "d"], "tr-2": ["c", "a", ODD]},
    "valid": {"va-1": ["a", "b"]},
    "test": {"te-1": ["c", "d", ODD], "te-3": ["d", "c"]},
}
EXPECTED_UNSEEN = {
    "valid_unseen": {"unseen_dropped": 3, "short_sessions_dropped": 1, "events_dropped": 4},
    "test_unseen": {"unseen_dropped": 3, "short_sessions_dropped": 1, "events_dropped": 3},
}


def _rows(sessions, tenant: str) -> list[dict]:
    out = []
    for sid, start, events in sessions:
        ts = [start + 60_000 * i for i in range(len(events))]
        out.append(
            {
                "session_uid": f"{tenant}/{sid}",
                "tenant": tenant,
                "session_id": sid,
                "session_start_ms": ts[0],
                "session_end_ms": ts[-1],
                "length": len(events),
                "items": [i for i, _ in events],
                "actions": [a for _, a in events],
                "timestamps": ts,
            }
        )
    return out


def _sql_text(v) -> str:
    return "'" + str(v).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _load_snowflake(port: int, rows: list[dict]) -> None:
    con = _source(port).connect()
    try:
        cur = con.cursor()
        cur.execute('create schema if not exists "RECFRAME"."PUBLIC"')
        cols = ", ".join(column_sql(c, "snowflake") for c in SESSION_SEQUENCES)
        cur.execute(f"create or replace table {TABLE} ({cols})")
        for i in range(0, len(rows), 200):
            values = ", ".join(
                f"({_sql_text(r['session_uid'])}, {_sql_text(r['tenant'])}, {_sql_text(r['session_id'])}, "
                f"{r['session_start_ms']}, {r['session_end_ms']}, {r['length']}, "
                + ", ".join(_sql_text(json.dumps(r[c])) for c in ("items", "actions", "timestamps"))
                + ")"
                for r in rows[i : i + 200]
            )
            cur.execute(
                f"insert into {TABLE} (session_uid, tenant, session_id, session_start_ms, session_end_ms, "
                "session_start, length, items, actions, timestamps) "
                "select column1, column2, column3, column4, column5, to_timestamp_ntz(column4, 3), column6, "
                f"parse_json(column7), parse_json(column8), parse_json(column9) from values {values}"
            )
    finally:
        con.close()


def _duckdb(rows: list[dict]) -> duckdb.DuckDBPyConnection:
    """The rows as DuckDB's build stores them: items as integer keys (``items`` names them) and
    actions as ranks beside the named lists, so the DuckDB path takes its integer fast path."""
    con = duckdb.connect()
    cols = ", ".join(column_sql(c, "duckdb") for c in SESSION_SEQUENCES)
    con.execute(f"create table main.session_sequences ({cols})")
    keys = {sku: k for k, sku in enumerate(sorted({i for r in rows for i in r["items"]}))}
    ranks = {a: r for r, a in enumerate(ACTION_OF_RANK)}
    frame = pd.DataFrame(  # noqa: F841 - read by DuckDB below
        [
            {
                **r,
                "item_keys": [keys[i] for i in r["items"]],
                "action_ranks": [ranks[a] for a in r["actions"]],
                "session_start": pd.Timestamp(r["session_start_ms"], unit="ms"),
                "etl_id": "e1",
            }
            for r in rows
        ]
    )
    con.execute(
        f"insert into main.session_sequences by name select {', '.join(c.name for c in SESSION_SEQUENCES)} from frame"
    )
    tenants = sorted({r["tenant"] for r in rows})
    items = pd.DataFrame(  # noqa: F841 - read by DuckDB below
        [{"tenant": t, "sku": sku, "item_key": k} for t in tenants for sku, k in keys.items()]
    )
    con.execute("create table main.items as select * from items")
    return con


def _both(port: int, rows: list[dict], tenant: str, split: dict, statements: list[str] | None = None):
    settings = validate_split(split)
    con = _source(port).connect()
    try:
        sf = snowflake_split.query_split(con.cursor(), TABLE, tenant, settings)
    finally:
        con.close()
    duck = session_query.query_split(_duckdb(rows), tenant, settings)
    return sf, duck


def _assert_same(sf, duck) -> None:
    for name, a, b in zip(("train", "valid", "test"), sf[:3], duck[:3], strict=True):
        pd.testing.assert_frame_equal(a, b, check_dtype=True, obj=name)
    assert sf[3] == duck[3]


def _sequences(frame: pd.DataFrame) -> dict[str, list[str]]:
    return {sid: list(g["item_id"]) for sid, g in frame.groupby("session_id", sort=True)}


def test_unseen_items_are_dropped_in_the_warehouse_as_on_duckdb(fakesnow_port, monkeypatch):
    rows = _rows(SESSIONS, "shop")
    sent: list[str] = []
    original = sf_cursor.SnowflakeCursor.execute

    def recording(self, command, *args, **kwargs):
        sent.append(str(command))
        return original(self, command, *args, **kwargs)

    with _deadline(120):
        _load_snowflake(fakesnow_port, rows)
        monkeypatch.setattr(sf_cursor.SnowflakeCursor, "execute", recording)
        sf, duck = _both(fakesnow_port, rows, "shop", {"test_days": 1, "valid_days": 1})
    for warehouse, (train, valid, test, stats) in (("snowflake", sf), ("duckdb", duck)):
        frames = {"train": train, "valid": valid, "test": test}
        for name, expected in EXPECTED.items():
            assert _sequences(frames[name]) == expected, (warehouse, name)
        # every surviving event keeps its own action and timestamp (a list position read once)
        te1 = test[test["session_id"] == "te-1"]
        assert list(te1["action"]) == ["detail", "add", "add"], warehouse
        assert list(te1["ts"] - (T0 + 3 * DAY_MS + 10)) == [0, 120_000, 180_000], warehouse
        for key, expected in EXPECTED_UNSEEN.items():
            assert stats[key] == expected, (warehouse, key)
        assert stats["train"]["items"] == 5 and stats["query"] == {"sessions": 7, "events": 20}
    _assert_same(sf, duck)
    # the client received the surviving events only, through plain SELECTs
    assert all(s.lstrip().lower().startswith(("select", "with")) for s in sent), sent


def test_a_larger_random_split_equals_duckdbs_event_for_event(fakesnow_port):
    """Hundreds of sessions of shuffled items, valid/test drawing on items train never saw: a list
    order lost anywhere, or an event paired with another's time or action, fails the comparison."""
    rng = np.random.default_rng(7)
    sessions = []
    for i in range(600):
        day = rng.integers(0, 10)
        start = T0 + int(day) * DAY_MS + int(rng.integers(0, 20 * H))
        n = int(rng.integers(2, 25))
        pool = 40 if day < 7 else 60  # items 40..59 appear only after train
        items = [f"i{int(k):02d}" for k in rng.integers(0, pool, n)]
        actions = [["detail", "add", "purchase"][int(k)] for k in rng.integers(0, 3, n)]
        sessions.append((f"s{int(rng.integers(0, 10**9)):09d}-{i}", start, list(zip(items, actions, strict=True))))
    rows = _rows(sessions, "big")
    with _deadline(240):
        _load_snowflake(fakesnow_port, rows)
        split = {"test_days": 2, "valid_days": 1, "min_length": 3}
        sf, duck = _both(fakesnow_port, rows, "big", split)
        kept_all, kept_all_duck = _both(fakesnow_port, rows, "big", {**split, "drop_unseen": False})
    _assert_same(sf, duck)
    _assert_same(kept_all, kept_all_duck)
    stats = sf[3]
    assert stats["valid_unseen"]["unseen_dropped"] > 0 and stats["test_unseen"]["unseen_dropped"] > 0
    assert stats["test_unseen"]["short_sessions_dropped"] > 0
    # without drop_unseen every event of the labelled sessions arrives, the unseen ones included
    assert "test_unseen" not in kept_all[3]
    for i, key in ((1, "valid_unseen"), (2, "test_unseen")):
        assert len(kept_all[i]) - len(sf[i]) == stats[key]["events_dropped"]
    # the fetched order is the lists' order: each session's times strictly increase (one minute apart)
    for frame in sf[:3]:
        sid, ts = frame["session_id"].to_numpy(), frame["ts"].to_numpy()
        same = sid[1:] == sid[:-1]
        assert np.all(~same | (ts[1:] > ts[:-1]))
