"""Where sessions are cut and which sessions reach a split, on the real DuckDB + dbt path.

One small events file (custom format: user id, optional session id, item, event, epoch ms) is
ingested and built by the packaged dbt project, then queried and split. The file is laid out so
that every rule is decided by one event: a gap of exactly ``session_gap_minutes`` (does not cut),
one second more (cuts), users whose events interleave (each user's gaps are its own), source
session ids (kept as they are, whatever the gaps), and sessions that start just outside
``split.start_date``/``end_date`` (no split) or just inside it (kept whole, even where their later
events fall outside the window).
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime

import duckdb
import pytest

from recframe.datasource.duckdb import DuckDBSource

GAP_MIN = 45  # not the default (30), so the test also shows that the var reaches the SQL
GAP_MS = GAP_MIN * 60_000
MIN_MS = 60_000


def _ms(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp() * 1000)


def _events() -> list[tuple[str, str, str, int]]:
    """(user, session id or "", item, epoch ms) rows; the expected sessions are in the tests below.

    Items are lower-case: staging normalises SKUs (trimmed, lower-cased), and the tests compare them.
    """
    rows: list[tuple[str, str, str, int]] = []

    def keyed(sid: str, user: str, start: str, items: str, step_ms: int = MIN_MS) -> None:
        t = _ms(start)
        rows.extend((user, sid, item, t + k * step_ms) for k, item in enumerate(items))

    # the window opens on 2024-03-02: a session starting one second before it, running into it
    keyed("pre", "p", "2024-03-01 23:59:59", "abc", step_ms=10 * MIN_MS)
    keyed("first_in", "f", "2024-03-02 00:00:00", "abcd")  # starts exactly at start_date: in
    # 2024-03-03: two users without session ids, their events interleaved
    t0 = _ms("2024-03-03 10:00:00")
    ua = [t0, t0 + GAP_MS, t0 + 2 * GAP_MS + 1000, t0 + 2 * GAP_MS + 1000 + MIN_MS]
    rows += [("ua", "", item, t) for item, t in zip("abcd", ua, strict=True)]
    # ub clicks every 20 minutes from 10:05 to 11:45: between each of ua's events, never a gap of its own
    rows += [("ub", "", "abcdab"[k], t0 + 5 * MIN_MS + k * 20 * MIN_MS) for k in range(6)]
    # 2024-03-04: source session ids are kept: a 3-hour pause inside one, two ids a minute apart
    keyed("S-long", "uk", "2024-03-04 09:00:00", "ab", step_ms=3 * 60 * MIN_MS)
    keyed("S-one", "uk", "2024-03-04 15:00:00", "cd")
    keyed("S-two", "uk", "2024-03-04 15:02:00", "da")
    keyed("train5", "t", "2024-03-05 12:00:00", "bcd")
    keyed("valid7", "v", "2024-03-07 12:00:00", "abc")
    keyed("test8", "w", "2024-03-08 12:00:00", "bca")
    # the window closes before 2024-03-09: a session starting inside it keeps its later events
    keyed("late_in", "l", "2024-03-08 23:55:00", "cda", step_ms=10 * MIN_MS)
    keyed("post", "q", "2024-03-09 00:00:00", "abc")  # starts exactly at end_date: out
    return rows


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("sessionisation")
    path = root / "events.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["uid", "sid", "item", "kind", "at_ms"])
        w.writerows((u, s, i, "view", t) for u, s, i, t in _events())
    src = DuckDBSource(
        warehouse=root / "wh.duckdb",
        raw={
            "format": "custom",
            "path": str(path),
            "columns": {
                "user_key": "uid",
                "session_key": "sid",
                "sku": "item",
                "event_type": "kind",
                "ts_raw": "at_ms",
            },
            "ts_unit": "ms",
        },
        dbt={"vars": {"session_gap_minutes": GAP_MIN}},
        split={"test_days": 1, "valid_days": 1, "start_date": "2024-03-02", "end_date": "2024-03-09"},
    )
    ds = src.load(root / "run")
    con = duckdb.connect(str(root / "wh.duckdb"), read_only=True)
    try:
        rows = con.execute("select session_id, items, timestamps from session_sequences").fetchall()
    finally:
        con.close()
    sessions = {sid: (list(items), list(ts)) for sid, items, ts in rows}
    return ds, sessions


def test_a_gap_of_exactly_session_gap_does_not_cut_one_second_more_does(built):
    _, sessions = built
    t0 = _ms("2024-03-03 10:00:00")
    assert sessions["ua-1"] == (["a", "b"], [t0, t0 + GAP_MS])  # gap == session_gap_minutes: same session
    assert sessions["ua-2"] == (["c", "d"], [t0 + 2 * GAP_MS + 1000, t0 + 2 * GAP_MS + 1000 + MIN_MS])
    assert not any(sid.startswith("ua-") and sid not in ("ua-1", "ua-2") for sid in sessions)


def test_interleaved_users_do_not_cut_each_other(built):
    _, sessions = built
    assert sessions["ub-1"][0] == list("abcdab")  # ua's cut falls between ub's events, ub stays whole
    assert not any(sid.startswith("ub-") and sid != "ub-1" for sid in sessions)


def test_source_session_ids_are_kept_whatever_the_gaps(built):
    _, sessions = built
    assert sessions["S-long"][0] == ["a", "b"]  # a 3-hour pause does not cut a keyed session
    assert sessions["S-one"][0] == ["c", "d"] and sessions["S-two"][0] == ["d", "a"]  # a minute apart: not merged
    keyed = {"pre", "first_in", "S-long", "S-one", "S-two", "train5", "valid7", "test8", "late_in", "post"}
    assert keyed | {"ua-1", "ua-2", "ub-1"} == set(sessions)


def test_the_window_selects_sessions_by_start_in_every_split(built):
    ds, sessions = built
    assert {"pre", "post"} <= set(sessions)  # built: the query's window, not the build, leaves them out
    got = {name: set(getattr(ds, name)["session_id"]) for name in ("train", "valid", "test")}
    assert got == {
        "train": {"first_in", "ua-1", "ua-2", "ub-1", "S-long", "S-one", "S-two", "train5"},
        "valid": {"valid7"},
        "test": {"test8", "late_in"},
    }
    # a session that starts inside the window keeps its events past end_date
    late = ds.test[ds.test["session_id"] == "late_in"]
    assert late["item_id"].tolist() == ["c", "d", "a"] and late["ts"].max() > _ms("2024-03-09 00:00:00")
    # and every event of a selected session reaches its split, none of the others
    for name, frame in (("train", ds.train), ("valid", ds.valid), ("test", ds.test)):
        for sid, group in frame.groupby("session_id"):
            assert group.sort_values("ts")["item_id"].tolist() == sessions[sid][0], (name, sid)
