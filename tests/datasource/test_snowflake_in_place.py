"""``raw.mode=in_place`` on Snowflake (a real fakesnow server, the real connector and dbt-snowflake): a
pre-created source table is read where it is. Every statement recframe and dbt send is recorded at the
connector: none writes to the source, none is a PUT or COPY, and the sessions equal DuckDB's."""

from __future__ import annotations

import re

import pandas as pd
import pyarrow as pa
import pytest

pytest.importorskip("snowflake.connector")
pytest.importorskip("fakesnow")
pytest.importorskip("dbt.adapters.snowflake")

import snowflake.connector.cursor as sf_cursor  # noqa: E402

from recframe.datasource.duckdb import DuckDBSource  # noqa: E402
from recframe.datasource.schema import SESSION_SEQUENCES  # noqa: E402
from recframe.datasource.synthetic import generate_events  # noqa: E402
from recframe.interfaces import ConfigError, DataError  # noqa: E402
from tests.datasource.test_snowflake_source import SPLIT, SYNTHETIC, _deadline, _source  # noqa: E402
from tests.datasource.test_snowflake_source import fakesnow_port as fakesnow_port  # noqa: E402, F401

pytestmark = pytest.mark.snowflake

#: the loader's column names (Snowflake upper-cases them); the config names them in lower case
LOADER = {"session_id_hash": "VISIT_ID", "event_type": "KIND", "product_action": "ACT",
          "product_sku_hash": "ITEM_REF", "server_timestamp_epoch_ms": "AT_MS"}  # fmt: skip
RAW = {
    "mode": "in_place",
    "table": "LANDING.WEB.CLICKS",
    "format": "custom",
    "columns": {"session_key": "visit_id", "event_type": "kind", "product_action": "act", "sku": "item_ref",
                "ts_raw": "at_ms"},
    "ts_unit": "ms",
}  # fmt: skip
#: the object a writing statement writes to (its first name after the verb)
WRITE_TARGET = re.compile(
    r"^\s*(?:/\*.*?\*/\s*)?(?:create(?:\s+or\s+replace)?(?:\s+(?:temporary|transient|local|global|secure))*"
    r"\s+(?:table|view|schema|stage|database)\s+(?:if\s+not\s+exists\s+)?|insert\s+(?:overwrite\s+)?into\s+"
    r"|update\s+|delete\s+from\s+|merge\s+into\s+|drop\s+\w+\s+(?:if\s+exists\s+)?|alter\s+\w+\s+(?:if\s+exists\s+)?"
    r"|truncate\s+(?:table\s+)?(?:if\s+exists\s+)?|copy\s+into\s+)([^\s(]+)",
    re.I | re.S,
)


def _write_targets(sent: list[str]) -> list[str]:
    return [m.group(1).replace('"', "").upper() for s in sent if (m := WRITE_TARGET.match(s))]


def _quoted(v) -> str:
    return "null" if v is None else (str(v) if isinstance(v, int) else "'" + str(v).replace("'", "''") + "'")


def _create_source(port: int, events: pa.Table, table: str = "LANDING.WEB.CLICKS") -> None:
    """The loader's table (``DATABASE.SCHEMA.TABLE``): its own names, extra columns."""
    database, schema, _ = table.split(".")
    con = _source(port).connect()
    try:
        cur = con.cursor()
        cur.execute(f"create database if not exists {database}")
        cur.execute(f"create schema if not exists {database}.{schema}")
        cur.execute(
            f"create table {table} (VISIT_ID varchar, KIND varchar, ACT varchar, ITEM_REF varchar, "
            "AT_MS number(18, 0), PAGE varchar, _FIVETRAN_SYNCED timestamp_ntz)"
        )
        rows = events.select(list(LOADER)).to_pylist()
        for i in range(0, len(rows), 500):
            values = ", ".join(
                "(" + ", ".join(_quoted(r[c]) for c in LOADER) + ", 'p', current_timestamp())"
                for r in rows[i : i + 500]
            )
            cur.execute(f"insert into {table} values {values}")
    finally:
        con.close()


def _content(port: int, table: str = "LANDING.WEB.CLICKS") -> tuple[int, list]:
    con = _source(port).connect()
    try:
        query = f"select VISIT_ID, KIND, ACT, ITEM_REF, AT_MS from {table} order by AT_MS, VISIT_ID, ITEM_REF, ACT"
        rows = con.cursor().execute(query).fetchall()
    finally:
        con.close()
    return len(rows), rows


@pytest.fixture
def statements(monkeypatch):
    """Every SQL text sent through the connector in this process (recframe's and dbt-snowflake's)."""
    sent: list[str] = []
    original = sf_cursor.SnowflakeCursor.execute

    def recording(self, command, *args, **kwargs):
        sent.append(str(command))
        return original(self, command, *args, **kwargs)

    monkeypatch.setattr(sf_cursor.SnowflakeCursor, "execute", recording)
    return sent


@pytest.mark.parametrize(
    ("configured", "table"),
    [
        ("LANDING.WEB.CLICKS", "LANDING.WEB.CLICKS"),  # the loader's own database and schema
        ("RAW.EVENTS", "RECFRAME.RAW.EVENTS"),  # schema RAW of recframe's database, as a loader names it
    ],
)
def test_in_place_table_is_read_without_a_write_and_gives_duckdbs_sessions(
    fakesnow_port, tmp_path, statements, configured, table
):
    events = generate_events(**SYNTHETIC).events
    events = events.cast(pa.schema([pa.field(f.name, pa.int64() if f.name.endswith("_ms") else pa.string())
                                    for f in events.schema]))  # fmt: skip
    with _deadline(300):
        _create_source(fakesnow_port, events, table)
        before = _content(fakesnow_port, table)
        statements.clear()
        src = _source(fakesnow_port, raw={**RAW, "table": configured}, state_dir=str(tmp_path / "state"))
        sf = src.load(tmp_path / "sf" / "data")
        sent = list(statements)
        after = _content(fakesnow_port, table)
    assert sent, "no statement recorded"
    assert not [s for s in sent if re.search(r"\b(put|copy\s+into|get)\s+['@]", s, re.I)], "PUT/COPY/GET sent"
    targets = _write_targets(sent)
    assert targets, "the recorder saw dbt's writes to its own models"
    assert not [t for t in targets if t.startswith("LANDING") or t.endswith(table.split(".", 1)[1])], targets
    assert not [t for t in targets if ".RAW." in f".{t}"], "recframe's raw tables written"
    assert not [s for s in sent if re.match(r"\s*(put|copy|get)\b", s, re.I)], "PUT/COPY/GET sent"
    assert before == after
    con = src.connect()
    try:
        described = con.cursor().execute('select * from "RECFRAME"."PUBLIC".SESSION_SEQUENCES limit 0').description
    finally:
        con.close()
    assert [d[0].lower() for d in described] == [c.name for c in SESSION_SEQUENCES]  # the DuckDB mart's columns
    assert sf.stats["raw_mode"] == "in_place" and sf.stats["rows_accounted"]
    assert sf.stats["source_fingerprint"]["rows"] == events.num_rows

    duck = DuckDBSource(warehouse=tmp_path / "wh.duckdb", synthetic=SYNTHETIC, split=SPLIT).load(tmp_path / "duck")
    for name in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(getattr(sf, name), getattr(duck, name), obj=name)
    for key in ("raw_rows", "accepted", "quarantined", "quarantine_reasons", "query", "straddling_dropped",
                "test_unseen", "valid_unseen", "train", "valid", "test", "targets"):  # fmt: skip
        assert sf.stats[key] == duck.stats[key], key


def test_missing_table_and_column_are_one_line(fakesnow_port, tmp_path):
    events = generate_events(n_sessions=20, n_items=10, n_days=2, seed=1).events
    with _deadline(120):
        _create_source(fakesnow_port, events)
        with pytest.raises(DataError) as e:
            _source(fakesnow_port, raw={**RAW, "table": "LANDING.WEB.KLICKS"}).load(tmp_path / "a")
        assert "LANDING.WEB.KLICKS" in str(e.value) and "\n" not in str(e.value)
        bad = {**RAW, "columns": {**RAW["columns"], "sku": "sku_id"}}
        with pytest.raises(DataError) as e:
            _source(fakesnow_port, raw=bad).load(tmp_path / "b")
        assert "'sku_id'" in str(e.value) and "ITEM_REF" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"mode": "in_place", "table": None, "path": "lake/*.parquet"}, "datasource.raw.path"),
        ({"mode": "in_place", "table": "A.B", "attach": "x.duckdb"}, "datasource.raw.attach"),
        ({"mode": "in_place", "table": "B"}, "datasource.raw.table"),
    ],
)
def test_duckdb_only_settings_fail_at_construction(raw, key):
    with pytest.raises(ConfigError) as e:
        _source(1, raw={**RAW, **raw})
    assert key in str(e.value)


@pytest.mark.slow
def test_incremental_build_on_snowflake_equals_a_full_refresh(fakesnow_port, tmp_path):
    """A day appended to the source: the incremental build (delete+insert, the one strategy fakesnow
    runs) re-reads from the cutoff and gives the full refresh's splits."""
    events = generate_events(**SYNTHETIC).events
    events = events.cast(pa.schema([pa.field(f.name, pa.int64() if f.name.endswith("_ms") else pa.string())
                                    for f in events.schema]))  # fmt: skip
    t_max = pa.compute.max(events["server_timestamp_epoch_ms"]).as_py()
    early = events.filter(pa.compute.less(events["server_timestamp_epoch_ms"], t_max - 86_400_000))
    late = events.filter(pa.compute.greater_equal(events["server_timestamp_epoch_ms"], t_max - 86_400_000))
    with _deadline(400):
        _create_source(fakesnow_port, early)
        state = str(tmp_path / "state")
        _source(fakesnow_port, raw=RAW, state_dir=state).build(tmp_path / "first")
        con = _source(fakesnow_port).connect()
        try:
            rows = late.select(list(LOADER)).to_pylist()
            values = ", ".join(
                "(" + ", ".join(_quoted(r[c]) for c in LOADER) + ", 'p', current_timestamp())" for r in rows
            )
            con.cursor().execute(f"insert into LANDING.WEB.CLICKS values {values}")
        finally:
            con.close()
        inc = _source(fakesnow_port, raw=RAW, state_dir=state).load(tmp_path / "inc")
        full = _source(fakesnow_port, raw=RAW, state_dir=state, dbt={"full_refresh": True}).load(tmp_path / "full")
    assert "and first_ms >=" in (tmp_path / "inc" / "logs" / "dbt.log").read_text()
    for name in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(getattr(inc, name), getattr(full, name), obj=name)
    assert inc.stats["source_fingerprint"]["rows"] == events.num_rows and inc.stats["rows_accounted"]
