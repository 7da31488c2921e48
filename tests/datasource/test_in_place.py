"""``datasource.raw.mode=in_place`` on DuckDB: a loader's table (in the warehouse or an attached file) and a
hive-partitioned Parquet lake are read where they are, never written, and give the sessions of an ingest.

Every case runs the real dbt project on a real DuckDB file and compares the splits with ingesting the
same events from a CSV file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from recframe.datasource import in_place
from recframe.datasource.duckdb import DuckDBSource
from recframe.datasource.synthetic import generate_events
from recframe.interfaces import ConfigError, DataError

EVENTS = {"n_sessions": 400, "n_items": 60, "n_days": 10, "seed": 3}
SPLIT = {"test_days": 2, "valid_days": 1}
#: the loader's own column names for the Coveo columns, plus columns recframe does not read
LOADER_COLUMNS = {
    "session_id_hash": "visit_id",
    "event_type": "kind",
    "product_action": "act",
    "product_sku_hash": "item_ref",
    "server_timestamp_epoch_ms": "at_ms",
    "hashed_url": "page",
}
CUSTOM = {
    "format": "custom",
    "columns": {"session_key": "visit_id", "event_type": "kind", "product_action": "act", "sku": "item_ref",
                "ts_raw": "at_ms"},
    "ts_unit": "ms",
}  # fmt: skip


@pytest.fixture(scope="module")
def events() -> pa.Table:
    table = generate_events(**EVENTS).events
    return table.cast(pa.schema([pa.field(f.name, pa.int64() if f.name.endswith("_ms") else pa.string())
                                 for f in table.schema]))  # fmt: skip


@pytest.fixture(scope="module")
def ingested(events, tmp_path_factory):
    """The reference: the same events written to a CSV file and ingested."""
    root = tmp_path_factory.mktemp("ingest")
    pacsv.write_csv(events, root / "events.csv")
    src = DuckDBSource(warehouse=root / "wh.duckdb", raw={"format": "coveo", "path": str(root / "events.csv")},
                       split=SPLIT)  # fmt: skip
    return src.load(root / "run")


def _load_source_table(con: duckdb.DuckDBPyConnection, events: pa.Table, schema: str, table: str) -> None:
    """Create the table as a loader would: its own schema, its own column names, extra columns."""
    con.register("_ev", events)
    renamed = ", ".join(f"{k} as {v}" for k, v in LOADER_COLUMNS.items())
    con.execute(f"create schema {schema}")
    con.execute(
        f"create table {schema}.{table} as select {renamed}, 'fivetran' as _loader, "
        "make_timestamp(server_timestamp_epoch_ms * 1000) as _synced_at from _ev"
    )
    con.unregister("_ev")


def _content_hash(con: duckdb.DuckDBPyConnection, relation: str) -> tuple[int, str]:
    n, h = con.execute(
        f"select count(*), md5(string_agg(md5(cast(t as varchar)), '' order by md5(cast(t as varchar)))) "
        f"from {relation} as t"
    ).fetchall()[0]
    return int(n), h


def _file_hash(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(str(p).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _raw_rows(warehouse: Path) -> dict[str, int]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return {t: con.execute(f"select count(*) from raw.{t}").fetchall()[0][0]
                for t in ("events", "items", "loads", "rejects")}  # fmt: skip
    finally:
        con.close()


def _assert_same_sessions(a, b) -> None:
    for name in ("train", "valid", "test"):
        fa, fb = getattr(a, name), getattr(b, name)
        assert len(fa) > 0, name
        pd.testing.assert_frame_equal(fa, fb, check_dtype=True, obj=name)
    for key in ("raw_rows", "accepted", "quarantined", "quarantine_reasons", "query", "straddling_dropped",
                "train", "valid", "test"):  # fmt: skip
        assert a.stats[key] == b.stats[key], key


def _assert_fingerprint(ds, events: pa.Table, run_dir: Path) -> None:
    manifest = json.loads((run_dir / "manifest.json").read_text()) if (run_dir / "manifest.json").exists() else None
    fp = ds.stats["source_fingerprint"]
    assert fp["rows"] == events.num_rows
    assert int(fp["latest_timestamp"]) == pa.compute.max(events["server_timestamp_epoch_ms"]).as_py()
    assert ds.stats["raw_mode"] == "in_place" and ds.stats["rows_accounted"]
    if manifest is not None:
        assert manifest["stats"]["source_fingerprint"] == fp


def test_table_in_the_warehouse_is_read_in_place(events, ingested, tmp_path):
    wh = tmp_path / "wh.duckdb"
    con = duckdb.connect(str(wh))
    _load_source_table(con, events, "shop", "clicks")
    before = _content_hash(con, "shop.clicks")
    con.close()

    src = DuckDBSource(warehouse=wh, raw={**CUSTOM, "mode": "in_place", "table": "shop.clicks"}, split=SPLIT)
    ds = src.load(tmp_path / "run")
    ds.save(tmp_path / "run")
    _assert_same_sessions(ds, ingested)
    _assert_fingerprint(ds, events, tmp_path / "run")
    assert _raw_rows(wh) == {"events": 0, "items": 0, "loads": 0, "rejects": 0}
    con = duckdb.connect(str(wh), read_only=True)
    try:
        assert _content_hash(con, "shop.clicks") == before
    finally:
        con.close()
    lineage = json.loads((tmp_path / "run" / "lineage.json").read_text())
    assert "source.recframe.recframe_events.events" in {n["id"] for n in lineage["nodes"]}


def test_attached_file_is_opened_read_only_and_left_byte_for_byte_unchanged(events, ingested, tmp_path):
    source_file = tmp_path / "loader.duckdb"
    con = duckdb.connect(str(source_file))
    _load_source_table(con, events, "landing", "web_events")
    con.execute("checkpoint")
    con.close()
    before = _file_hash(source_file)

    raw = {**CUSTOM, "mode": "in_place", "table": "landing.web_events", "attach": str(source_file)}
    ds = DuckDBSource(warehouse=tmp_path / "wh.duckdb", raw=raw, split=SPLIT).load(tmp_path / "run")
    _assert_same_sessions(ds, ingested)
    _assert_fingerprint(ds, events, tmp_path / "run")
    assert _file_hash(source_file) == before
    assert not list(tmp_path.glob("loader.duckdb.wal"))
    assert _raw_rows(tmp_path / "wh.duckdb") == {"events": 0, "items": 0, "loads": 0, "rejects": 0}


def test_hive_partitioned_parquet_lake_is_read_where_it_is(events, ingested, tmp_path):
    lake = tmp_path / "lake"
    con = duckdb.connect()
    con.register("_ev", events)
    renamed = ", ".join(f"{k} as {v}" for k, v in LOADER_COLUMNS.items())
    con.execute(
        f"copy (select {renamed}, strftime(make_timestamp(server_timestamp_epoch_ms * 1000), '%Y-%m-%d') as day "
        f"from _ev) to '{lake}' (format parquet, partition_by (day))"
    )
    con.close()
    files = sorted(lake.rglob("*.parquet"))
    assert len(files) > 5 and all(f.parent.name.startswith("day=") for f in files)
    before, listing = _file_hash(*files), sorted(lake.rglob("*"))

    raw = {**CUSTOM, "mode": "in_place", "path": str(lake / "**" / "*.parquet")}
    ds = DuckDBSource(warehouse=tmp_path / "wh.duckdb", raw=raw, split=SPLIT).load(tmp_path / "run")
    _assert_same_sessions(ds, ingested)
    _assert_fingerprint(ds, events, tmp_path / "run")
    assert sorted(lake.rglob("*")) == listing and _file_hash(*files) == before  # nothing added or changed
    assert _raw_rows(tmp_path / "wh.duckdb") == {"events": 0, "items": 0, "loads": 0, "rejects": 0}


def test_tenant_from_a_mapped_column(events, ingested, tmp_path):
    """Two shops in one source table: the configured tenant's rows only, its sessions unchanged."""
    wh = tmp_path / "wh.duckdb"
    con = duckdb.connect(str(wh))
    _load_source_table(con, events, "shop", "clicks")
    con.execute("alter table shop.clicks add column shop varchar default 'eu'")
    con.execute(
        "insert into shop.clicks select * replace ('us' as shop, visit_id || '-us' as visit_id) from shop.clicks"
    )
    con.close()
    raw = {**CUSTOM, "mode": "in_place", "table": "shop.clicks",
           "columns": {**CUSTOM["columns"], "tenant": "shop"}}  # fmt: skip
    ds = DuckDBSource(warehouse=wh, tenant="eu", raw=raw, split=SPLIT).load(tmp_path / "run")
    _assert_same_sessions(ds, ingested)
    assert ds.stats["source_fingerprint"]["rows"] == events.num_rows


# ------------------------------------------------------------------------------------------------
# bad input: one line, before any work


def _source_warehouse(tmp_path: Path, events: pa.Table) -> Path:
    wh = tmp_path / "wh.duckdb"
    con = duckdb.connect(str(wh))
    _load_source_table(con, events, "shop", "clicks")
    con.close()
    return wh


def test_missing_table_is_one_line_naming_it(events, tmp_path):
    wh = _source_warehouse(tmp_path, events)
    src = DuckDBSource(warehouse=wh, raw={**CUSTOM, "mode": "in_place", "table": "shop.klicks"}, split=SPLIT)
    with pytest.raises(DataError) as e:
        src.load(tmp_path / "run")
    assert "shop.klicks" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "run" / "lineage.json").exists()


def test_missing_column_is_one_line_naming_it(events, tmp_path):
    wh = _source_warehouse(tmp_path, events)
    raw = {**CUSTOM, "mode": "in_place", "table": "shop.clicks", "columns": {**CUSTOM["columns"], "sku": "sku_id"}}
    with pytest.raises(DataError) as e:
        DuckDBSource(warehouse=wh, raw=raw, split=SPLIT).load(tmp_path / "run")
    msg = str(e.value)
    assert "'sku_id'" in msg and "shop.clicks" in msg and "item_ref" in msg and "\n" not in msg
    assert not (tmp_path / "run" / "lineage.json").exists()


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"mode": "elsewhere"}, "datasource.raw.mode"),
        ({"mode": "in_place"}, "datasource.raw.table"),
        ({"mode": "in_place", "table": "clicks"}, "datasource.raw.table"),
        ({"mode": "in_place", "table": 'shop.x"; drop table y; --'}, "datasource.raw.table"),
        ({"mode": "in_place", "table": "raw.events"}, "datasource.raw.table"),
        ({"mode": "in_place", "table": "a.b", "path": "x/*.parquet"}, "datasource.raw.table"),
        ({"mode": "in_place", "path": "x/*.parquet", "attach": "f.duckdb"}, "datasource.raw.attach"),
        ({"mode": "in_place", "table": "a.b", "items_path": "items.csv"}, "datasource.raw.items_path"),
        ({"mode": "ingest", "table": "a.b", "path": "x.csv"}, "datasource.raw.table"),
    ],
)
def test_bad_in_place_settings_fail_at_construction(raw, key):
    with pytest.raises(ConfigError) as e:
        DuckDBSource(raw={**CUSTOM, **raw})
    assert key in str(e.value) and "\n" not in str(e.value)


def test_missing_attach_file_and_empty_glob_fail_in_check(tmp_path):
    attach = str(tmp_path / "nope.duckdb")
    src = DuckDBSource(
        warehouse=tmp_path / "wh.duckdb", raw={**CUSTOM, "mode": "in_place", "table": "a.b", "attach": attach}
    )
    with pytest.raises(DataError, match="datasource.raw.attach does not exist"):
        src.check()
    src = DuckDBSource(warehouse=tmp_path / "wh.duckdb",
                       raw={**CUSTOM, "mode": "in_place", "path": str(tmp_path / "none" / "*.parquet")})  # fmt: skip
    with pytest.raises(DataError, match="datasource.raw.path matches no file"):
        src.check()
    assert not (tmp_path / "wh.duckdb").exists()


def test_raw_tables_and_session_sequences_follow_the_contract(ingested, events, tmp_path):
    """The raw DDL is generated from recframe.datasource.schema; session_sequences has its columns."""
    from recframe.datasource.schema import RAW_TABLES, SESSION_SEQUENCES

    wh = Path(ingested.stats["warehouse"])
    con = duckdb.connect(str(wh), read_only=True)
    try:
        for table, columns in RAW_TABLES.items():
            found = [d[0] for d in con.execute(f"select * from raw.{table} limit 0").description]
            assert found == [c.name for c in columns], table
        found = [d[0] for d in con.execute("select * from main.session_sequences limit 0").description]
    finally:
        con.close()
    assert found == [c.name for c in SESSION_SEQUENCES]


@pytest.mark.parametrize("statistics", [True, False])
def test_lake_fingerprint_from_parquet_statistics_equals_a_full_read(events, tmp_path, statistics):
    """A lake's latest timestamp comes from its row groups' statistics when they hold it exactly, and
    from reading every timestamp when they do not (files written without statistics): the same
    fingerprint either way, so a build's load id does not depend on how it was found."""
    lake = tmp_path / "lake"
    ts = events["server_timestamp_epoch_ms"]
    day = pa.compute.cast(pa.compute.divide(ts, 86_400_000), pa.int64())
    for d in pa.compute.unique(day).to_pylist():
        (lake / f"day={d}").mkdir(parents=True)
        part = events.filter(pa.compute.equal(day, d))
        pq.write_table(part, lake / f"day={d}" / "part-0.parquet", row_group_size=50, write_statistics=statistics)
    con = duckdb.connect()
    try:
        rel = in_place.prepare_duckdb(con, in_place.InPlaceConfig(path=str(lake / "*" / "*.parquet")))
        columns = {"ts_raw": "server_timestamp_epoch_ms"}
        from_stats = in_place.parquet_stats_latest(con, rel, "server_timestamp_epoch_ms")
        assert (from_stats is not None) == statistics
        fp = in_place.duckdb_fingerprint(con, rel, columns, "default")
        sql, params = in_place.fingerprint_sql(rel.sql, columns, in_place._q, "default")
        rows, latest = con.execute(sql, params).fetchall()[0]
        # a text column (statistics may be truncated) and the partition key are read, never guessed
        assert in_place.parquet_stats_latest(con, rel, "session_id_hash") is None
        assert in_place.parquet_stats_latest(con, rel, "day") is None
    finally:
        con.close()
    assert (fp.rows, fp.latest) == (rows, latest) == (events.num_rows, str(pa.compute.max(ts).as_py()))
