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


def test_a_deferred_fingerprint_is_hashed_beside_a_first_load_and_first_when_it_decides_a_skip(tmp_path, small):
    import threading

    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    calls: list[str] = []

    def fp() -> str:
        calls.append(threading.current_thread().name)
        return "fp-deferred"

    first = ingest(con, small.events, COVEO, "shop", fp)
    # no current load: nothing to skip, so it ran in its own thread, and the load carries its value
    assert not first.skipped and len(calls) == 1 and calls[0].startswith("recframe-fingerprint")
    assert con.execute("select fingerprint from raw.loads").fetchall() == [("fp-deferred",)]
    again = ingest(con, small.events, COVEO, "shop", fp)
    # a current load: the fingerprint is needed before anything is written, in the caller's thread
    assert again.skipped and again.etl_id == first.etl_id and calls[1] == threading.current_thread().name
    assert _counts(con) == (small.events.num_rows, 1)


def test_a_failing_deferred_fingerprint_writes_nothing(tmp_path, small):
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))

    def unreadable() -> str:
        raise PermissionError("cannot read the input")

    with pytest.raises(PermissionError):
        ingest(con, small.events, COVEO, "shop", unreadable)
    assert _counts(con) == (0, 0)


def test_custom_format_from_csv_and_parquet_with_reader_rejects(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from recframe.datasource.formats import resolve_format
    from recframe.datasource.warehouse import relation_sql

    fmt = resolve_format(
        {
            "format": "custom",
            "columns": {"user_key": "who", "sku": "what", "event_type": "kind", "ts_raw": "at"},
            "ts_unit": "timestamp",
            "delimiter": ";",
        }
    )
    csv = tmp_path / "clicks.csv"
    csv.write_bytes(
        b"who;what;kind;at\n"
        b"u1; A ;view;2020-01-01 10:00:00\n"
        b"u1;B;cart;2020-01-01 10:05:00 UTC\n"
        b"u2;C;view;not a time\n"
        b"u3;\xff;view;2020-01-01 10:00:00\n"  # not UTF-8: rejected by the reader, kept in raw.rejects
        b"u4;D;view\n"  # a column short
    )
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    load = ingest(con, relation_sql(csv, fmt), fmt, "t", "fp-csv")
    assert load.n_rows == 5
    rows = con.execute("select user_key, sku, event_type, ts_ms from raw.events order by ts_raw").fetchall()
    assert rows[0] == ("u1", " A ", "view", 1_577_872_800_000) and rows[1][3] == 1_577_873_100_000
    assert rows[2][3] is None  # malformed timestamps stay in raw (quarantined by dbt)
    rejects = dict(con.execute("select line, error_type from raw.rejects").fetchall())
    assert len(rejects) == 2 and any("ENCODING" in e.upper() for e in rejects.values())

    pq.write_table(
        pa.table({"who": ["u1"], "what": ["A"], "kind": ["view"], "at": ["2020-01-01 10:00:00"]}),
        tmp_path / "clicks.parquet",
    )
    load = ingest(con, relation_sql(tmp_path / "clicks.parquet", fmt), fmt, "t2", "fp-pq")
    assert load.n_rows == 1


def test_custom_format_needs_the_essential_columns():
    from recframe.datasource.formats import resolve_format
    from recframe.interfaces import ConfigError

    with pytest.raises(ConfigError, match="datasource.raw.columns"):
        resolve_format({"format": "custom", "columns": {"sku": "x"}})
    with pytest.raises(ConfigError, match="datasource.raw.columns"):
        resolve_format({"format": "coveo", "columns": {"colour": "x"}})


def test_coveo_leaves_the_url_out_unless_mapped(tmp_path, small):
    """hashed_url is read by nothing downstream: not stored by default, stored when mapped."""
    from recframe.datasource.formats import resolve_format

    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    ingest(con, small.events, resolve_format({"format": "coveo"}), "plain", "fp-1")
    kept = resolve_format({"format": "coveo", "columns": {"url": "hashed_url"}})
    ingest(con, small.events, kept, "with_url", "fp-1")
    stored = dict(con.execute("select tenant, count(url) from raw.events group by tenant").fetchall())
    assert stored == {"plain": 0, "with_url": small.events.num_rows}
