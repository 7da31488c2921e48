"""Incremental builds of an in-place source: after a day of events is appended, the incremental build
re-reads only the tail and gives exactly the sessions of a full refresh (real dbt, real DuckDB file)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from recframe.datasource.duckdb import DuckDBSource
from recframe.datasource.synthetic import generate_events
from recframe.interfaces import DataError

SPLIT = {"test_days": 2, "valid_days": 1}
DAY_MS = 86_400_000
#: the same events as a source keyed by session, and as one keyed by user only (cut by the gap)
LAYOUTS = {
    "session_keyed": {"format": "coveo"},
    "user_keyed": {
        "format": "custom",
        "columns": {"user_key": "user_id", "event_type": "event_type", "product_action": "product_action",
                    "sku": "product_sku_hash", "ts_raw": "server_timestamp_epoch_ms"},
        "ts_unit": "ms",
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def events() -> pa.Table:
    table = generate_events(n_sessions=500, n_items=80, n_days=8, seed=11).events
    return table.cast(pa.schema([pa.field(f.name, pa.int64() if f.name.endswith("_ms") else pa.string())
                                 for f in table.schema]))  # fmt: skip


def _source_table(wh: Path, events: pa.Table, where: str) -> None:
    con = duckdb.connect(str(wh))
    try:
        con.register("_ev", events)
        con.execute("create schema if not exists shop")
        # 40 users, each with many sessions: the user-keyed layout sessionises them by the gap
        select = f"select *, 'u' || cast(hash(session_id_hash) % 40 as varchar) as user_id from _ev where {where}"
        if con.execute("select count(*) from duckdb_tables() where table_name = 'clicks'").fetchall()[0][0]:
            con.execute(f"insert into shop.clicks {select}")
        else:
            con.execute(f"create table shop.clicks as {select}")
    finally:
        con.close()


def _sessions(wh: Path) -> pd.DataFrame:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.execute(
            "select session_uid, length, items, actions, timestamps from main.session_sequences order by session_uid"
        ).df()
    finally:
        con.close()


#: the quarantine and the catalogue as built (not the load id, which follows the source's fingerprint,
#: nor the item keys, which an incremental build numbers on after the kept ones)
MARTS = {
    "quarantine": "select tenant, reason, session_key, sku, event_type_raw, product_action_raw, ts_raw, event_ms,"
    " n_rows from main.quarantine order by all",
    "items": "select item_uid, tenant, sku, category, price_bucket, n_events from main.items order by all",
}


def _marts(wh: Path) -> dict[str, pd.DataFrame]:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return {name: con.execute(sql).df() for name, sql in MARTS.items()}
    finally:
        con.close()


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_incremental_run_after_appending_a_day_equals_a_full_refresh(events, tmp_path, layout):
    wh = tmp_path / "wh.duckdb"
    t_max = pa.compute.max(events["server_timestamp_epoch_ms"]).as_py()
    cut = t_max - DAY_MS
    _source_table(wh, events, f"server_timestamp_epoch_ms < {cut}")
    raw = {**LAYOUTS[layout], "mode": "in_place", "table": "shop.clicks"}
    first = DuckDBSource(warehouse=wh, raw=raw, split=SPLIT)
    first_load = first.build(tmp_path / "first")
    before = _sessions(wh)

    _source_table(wh, events, f"server_timestamp_epoch_ms >= {cut}")  # the loader appends a day
    inc = DuckDBSource(warehouse=wh, raw=raw, split=SPLIT).load(tmp_path / "incremental")
    incremental = _sessions(wh)
    incremental_marts = _marts(wh)
    log = (tmp_path / "incremental" / "logs" / "dbt.log").read_text()
    # the incremental build re-read from a cutoff and deleted only the sessions from it on, each a
    # plain comparison the scan applies (the build's one tenant, from its cutoff on)
    assert "'default' and first_ms >=" in log and "'default' and ts_source >=" in log
    # the quarantine deleted only its rows from the cutoff on, and the source's tail was read alone
    assert "'default' and event_ms >=" in log and "ts_source >=" in log
    # and the session data tests checked only the rebuilt sessions (the generic ones through their
    # `where` config, macros/rebuilt_rows.sql), the quarantine's only the re-inserted rows
    assert "'default' and session_start_ms >=" in log and "(first_ms >=" in log and "(event_ms >=" in log
    assert "dbt_subquery" in log and "key_hash in (select key_hash from" in log
    # items updated its counts (the rebuilt sessions', less those they replaced) instead of recounting
    assert "int_item_counts_replaced" in log and "having sum(n_events) > 0" in log
    # the new load id and load time reach dbt as environment variables that only the build renders,
    # so the first build's parse still held: its manifest, kept beside the warehouse
    # (recframe/datasource/dbt_parse_cache.py), was reused and dbt ran once, the build itself,
    # parsing nothing, yet the build used the new load id (below)
    assert log.count("Running with dbt=") == 1 and '"command_name": "parse"' not in log
    assert "Unable to do partial parsing" not in log and "Partial parsing enabled" not in log
    con = duckdb.connect(str(wh), read_only=True)
    try:
        built_under = con.execute("select etl_id from main.stg_events__current_loads").fetchall()
    finally:
        con.close()
    assert built_under == [(inc.stats["etl_id"],)] and inc.stats["etl_id"] != first_load.etl_id
    assert len(incremental) > len(before)
    kept = before.merge(incremental, on="session_uid", suffixes=("", "_after"))
    assert len(kept) >= len(before) // 2  # most earlier sessions were kept as built

    full = DuckDBSource(warehouse=wh, raw=raw, split=SPLIT, dbt={"full_refresh": True}).load(tmp_path / "full")
    full_log = (tmp_path / "full" / "logs" / "dbt.log").read_text()
    assert "and first_ms >=" not in full_log and "dbt_subquery" not in full_log  # everything rebuilt and tested
    assert "having sum(n_events) > 0" not in full_log
    rebuilt = _sessions(wh)
    pd.testing.assert_frame_equal(incremental, rebuilt)
    for name, frame in _marts(wh).items():
        assert len(frame) > 0, name
        pd.testing.assert_frame_equal(incremental_marts[name], frame, obj=name)
    for name in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(getattr(inc, name), getattr(full, name), obj=name)
    for key in ("raw_rows", "accepted", "quarantined", "quarantine_reasons", "rows_accounted"):
        assert inc.stats[key] == full.stats[key], key
    assert inc.stats["rows_accounted"] and inc.stats["source_fingerprint"]["rows"] == events.num_rows


def test_changed_settings_rebuild_everything(events, tmp_path):
    """Another session gap shapes other sessions: the next build is a full one, not a continuation."""
    wh = tmp_path / "wh.duckdb"
    _source_table(wh, events, "true")
    raw = {**LAYOUTS["user_keyed"], "mode": "in_place", "table": "shop.clicks"}
    DuckDBSource(warehouse=wh, raw=raw, split=SPLIT).build(tmp_path / "a")
    other = {"vars": {"session_gap_minutes": 10}}
    DuckDBSource(warehouse=wh, raw=raw, split=SPLIT, dbt=other).load(tmp_path / "b")
    assert "and first_ms >=" not in (tmp_path / "b" / "logs" / "dbt.log").read_text()
    changed = _sessions(wh)
    DuckDBSource(warehouse=wh, raw=raw, split=SPLIT, dbt={**other, "full_refresh": True}).load(tmp_path / "c")
    pd.testing.assert_frame_equal(changed, _sessions(wh))


@pytest.mark.parametrize("hashes_hold", [True, False])
def test_a_kept_sessions_key_reappearing_in_the_new_day_fails_the_scoped_unique_test(events, tmp_path, hashes_hold):
    """The data tests of an incremental build read only the rebuilt sessions, yet a new session that
    repeats the key of one built before (a session id reused after more than a gap) is caught: the
    key test compares the new keys with every session's (int_sessions' key), by their stored hashes,
    or as text when the stored hashes no longer match the warehouse's hash function."""
    wh = tmp_path / "wh.duckdb"
    t_max = pa.compute.max(events["server_timestamp_epoch_ms"]).as_py()
    cut = t_max - DAY_MS
    _source_table(wh, events, f"server_timestamp_epoch_ms < {cut}")
    raw = {**LAYOUTS["session_keyed"], "mode": "in_place", "table": "shop.clicks"}
    DuckDBSource(warehouse=wh, raw=raw, split=SPLIT).build(tmp_path / "first")
    before = _sessions(wh)
    # the earliest accepted session: long over before the new day, so kept as built
    con = duckdb.connect(str(wh), read_only=True)
    try:
        old = con.execute("select session_id from main.session_sequences order by session_start_ms limit 1").fetchall()[
            0
        ][0]
    finally:
        con.close()
    _source_table(wh, events, f"server_timestamp_epoch_ms >= {cut}")  # the day, as before
    con = duckdb.connect(str(wh))
    try:  # three more views of it in the new day's last hours, as a loader would append them
        con.register("_ev", events)
        con.execute(
            "insert into shop.clicks by name select session_id_hash, 'event_product' as event_type,"
            f" 'detail' as product_action, product_sku_hash, {t_max} - 3600000 + 1000 * row_number() over ()"
            " as server_timestamp_epoch_ms, hashed_url, 'u0' as user_id from _ev where session_id_hash = ? limit 3",
            [old],
        )
        if not hashes_hold:  # as if written by a DuckDB release whose hash function differed
            con.execute("update main.int_sessions set key_hash = key_hash + 1")
    finally:
        con.close()

    with pytest.raises(DataError, match="assert_session_keys_unique fail"):
        DuckDBSource(warehouse=wh, raw=raw, split=SPLIT).build(tmp_path / "incremental")
    log = (tmp_path / "incremental" / "logs" / "dbt.log").read_text()
    compared = "key_hash in (select key_hash from" if hashes_hold else "session_id in (select session_id from"
    assert compared in log  # the test was scoped, and still failed
    assert len(before) > 100  # many sessions were built before: the duplicate is one of them
    # a full refresh builds the reused id as one session again, and its tests pass
    DuckDBSource(warehouse=wh, raw=raw, split=SPLIT, dbt={"full_refresh": True}).build(tmp_path / "full")
    log = (tmp_path / "full" / "logs" / "dbt.log").read_text()
    assert "key_hash in (select key_hash from" not in log and "session_id in (select session_id from" not in log
    rebuilt = _sessions(wh)
    assert rebuilt["session_uid"].is_unique and (rebuilt["session_uid"] == f"default/{old}").sum() == 1


def test_scoped_not_null_reads_the_rebuilt_sessions_only_and_fails_on_them(events, tmp_path):
    """not_null_columns (one node for several columns) on an incremental build: a null in a session
    kept from before the cutoff was tested when that session was built and is not read again; a null
    in a rebuilt one fails the test, named."""
    wh = tmp_path / "wh.duckdb"
    t_max = pa.compute.max(events["server_timestamp_epoch_ms"]).as_py()
    _source_table(wh, events, f"server_timestamp_epoch_ms < {t_max - DAY_MS}")
    raw = {**LAYOUTS["session_keyed"], "mode": "in_place", "table": "shop.clicks"}
    DuckDBSource(warehouse=wh, raw=raw, split=SPLIT).build(tmp_path / "first")
    _source_table(wh, events, f"server_timestamp_epoch_ms >= {t_max - DAY_MS}")
    src = DuckDBSource(warehouse=wh, raw=raw, split=SPLIT)
    src.build(tmp_path / "incremental")

    def null_n_kept(rebuilt: bool) -> None:
        con = duckdb.connect(str(wh))
        try:
            cut = con.execute("select cut_ms from main.int_build_cutoffs").fetchall()[0][0]
            op = ">=" if rebuilt else "<"
            con.execute(
                "update main.int_sessions set n_kept = null where session_id = "
                f"(select min(session_id) from main.int_sessions where first_ms {op} ?)",
                [cut],
            )
        finally:
            con.close()

    null_n_kept(rebuilt=False)
    src._dbt(["test", "--select", "int_sessions"], tmp_path / "old")  # passes: not read again
    null_n_kept(rebuilt=True)
    with pytest.raises(DataError, match="not_null_columns_int_sessions.* fail"):
        src._dbt(["test", "--select", "int_sessions"], tmp_path / "rebuilt")


def test_rows_without_a_time_are_kept_until_more_arrive(events, tmp_path):
    """Rows without a timestamp cannot be placed before or after a cutoff. While the source holds no
    more of them than the last build quarantined, an incremental build keeps their quarantine rows
    (nothing deleted, nothing re-read); once a loader appends another, it deletes and re-inserts
    them all. Either way the quarantine equals a full refresh's."""
    wh = tmp_path / "wh.duckdb"
    t_max = pa.compute.max(events["server_timestamp_epoch_ms"]).as_py()
    untimed = pa.compute.is_null(events["server_timestamp_epoch_ms"])
    assert not pa.compute.any(untimed).as_py()  # the events have times; rows without one are added here
    no_time = events.slice(0, 7).set_column(
        events.schema.get_field_index("server_timestamp_epoch_ms"),
        "server_timestamp_epoch_ms",
        pa.nulls(7, pa.int64()),
    )
    _source_table(
        wh,
        pa.concat_tables([events, no_time.slice(0, 5)]),
        f"coalesce(server_timestamp_epoch_ms, 0) < {t_max - DAY_MS}",
    )
    raw = {**LAYOUTS["session_keyed"], "mode": "in_place", "table": "shop.clicks"}
    DuckDBSource(warehouse=wh, raw=raw, split=SPLIT).build(tmp_path / "first")

    def build(name: str, **dbt) -> tuple[str, pd.DataFrame, bool]:
        DuckDBSource(warehouse=wh, raw=raw, split=SPLIT, dbt=dbt).build(tmp_path / name)
        con = duckdb.connect(str(wh), read_only=True)
        try:
            kept = con.execute("select untimed_kept from main.int_build_cutoffs").fetchall()
        finally:
            con.close()
        return (tmp_path / name / "logs" / "dbt.log").read_text(), _marts(wh)["quarantine"], kept == [(True,)]

    _source_table(wh, events, f"server_timestamp_epoch_ms >= {t_max - DAY_MS}")  # a day, every row timed
    log, quarantine, kept = build("day")
    assert kept and "event_ms is null or" not in log
    assert (quarantine["reason"] == "null_timestamp").sum() == 5
    _, full, _ = build("full_after_day", full_refresh=True)
    pd.testing.assert_frame_equal(quarantine, full)

    _source_table(wh, no_time.slice(5), "true")  # two more rows without a time
    log, quarantine, kept = build("untimed")
    assert not kept and "event_ms is null or" in log
    assert (quarantine["reason"] == "null_timestamp").sum() == 7
    _, full, _ = build("full_after_untimed", full_refresh=True)
    pd.testing.assert_frame_equal(quarantine, full)
