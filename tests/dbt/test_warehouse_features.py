"""Slower warehouse features: several tenants in one warehouse (incremental marts), dbt docs."""

from __future__ import annotations

import duckdb
import pytest

from recframe.datasource.duckdb import DuckDBSource

pytestmark = pytest.mark.slow


def test_tenants_share_a_warehouse_and_rebuilds_replace_only_their_own_rows(tmp_path):
    wh = tmp_path / "wh.duckdb"
    a = DuckDBSource(warehouse=wh, tenant="a", synthetic={"n_sessions": 300, "n_items": 40, "seed": 1})
    b = DuckDBSource(warehouse=wh, tenant="b", synthetic={"n_sessions": 200, "n_items": 40, "seed": 2})
    a.build(tmp_path / "a1")
    b.build(tmp_path / "b1")

    def counts():
        con = duckdb.connect(str(wh), read_only=True)
        try:
            return dict(con.execute("select tenant, count(*) from session_sequences group by tenant").fetchall())
        finally:
            con.close()

    before = counts()
    assert set(before) == {"a", "b"}
    # a new input for tenant a (another seed) replaces a's sessions and leaves b's untouched
    a2 = DuckDBSource(warehouse=wh, tenant="a", synthetic={"n_sessions": 100, "n_items": 40, "seed": 3})
    a2.build(tmp_path / "a2")
    after = counts()
    assert after["b"] == before["b"] and after["a"] != before["a"]

    # every tenant's items are named through its own keys: the same as a warehouse of its own
    def sequences(path, tenant):
        con = duckdb.connect(str(path), read_only=True)
        try:
            q = "select session_id, items, timestamps from session_sequences where tenant = ? order by 1"
            return con.execute(q, [tenant]).fetchall()
        finally:
            con.close()

    alone = DuckDBSource(
        warehouse=tmp_path / "b_alone.duckdb", tenant="b", synthetic={"n_sessions": 200, "n_items": 40, "seed": 2}
    )
    alone.build(tmp_path / "b_alone")
    assert sequences(wh, "b") == sequences(tmp_path / "b_alone.duckdb", "b")


def test_dbt_docs_generate(tmp_path):
    src = DuckDBSource(warehouse=tmp_path / "wh.duckdb", synthetic={"n_sessions": 200, "n_items": 30})
    src.build(tmp_path / "run")
    docs = src.generate_docs(tmp_path / "run")
    assert (docs / "index.html").exists() and (docs / "catalog.json").exists()
