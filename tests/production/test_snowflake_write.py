"""recframe's tables in Snowflake: the real connector's bulk load against a fresh fakesnow server per test."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

pytest.importorskip("snowflake.connector")
pytest.importorskip("fakesnow")

from recframe.interfaces import RecframeError  # noqa: E402
from recframe.warehouse_writer import (  # noqa: E402
    RECOMMENDATIONS,
    RECOMMENDATIONS_DDL,
    SnowflakeWriter,
    ensure_tables,
)
from tests.datasource.test_snowflake_source import _deadline, _source  # noqa: E402
from tests.datasource.test_snowflake_source import fakesnow_port as fakesnow_port  # noqa: E402, F401

pytestmark = pytest.mark.snowflake


@pytest.fixture
def source(fakesnow_port):
    """A SnowflakeSource pointing at a fresh ``fakesnow -s`` server on 127.0.0.1 (stopped afterwards)."""
    con = _source(fakesnow_port).connect()
    con.cursor().execute("create schema if not exists RECFRAME.PUBLIC")
    con.close()
    return _source(fakesnow_port)


def _frame(run_id: str, n: int, k: int, scored_at: datetime) -> pd.DataFrame:
    rows = [("default", f"s{i}", None if i % 2 else f"u{i}", r, f"sku{(i + r) % 7}", 1.0 / r, "pop-abc", run_id,
             scored_at) for i in range(n) for r in range(1, k + 1)]  # fmt: skip
    return pd.DataFrame(rows, columns=[c.split()[0] for c in RECOMMENDATIONS_DDL.split(", ")])


def test_bulk_load_replaces_a_runs_rows_and_a_failure_keeps_them(source):
    with _deadline(240), SnowflakeWriter(source) as w:
        ensure_tables(w)
        t1 = datetime(2026, 1, 2, 3, 4, 5)
        where, params = "tenant = ? and run_id = ?", ["default", "run-a"]
        assert w.replace_rows(RECOMMENDATIONS, RECOMMENDATIONS_DDL, _frame("run-a", 50, 4, t1), where, params) == 200
        w.replace_rows(RECOMMENDATIONS, RECOMMENDATIONS_DDL, _frame("run-b", 5, 2, t1), "run_id = ?", ["run-b"])
        table = w.table(RECOMMENDATIONS)
        got = w.fetch(f"select count(*), max(rank), count(user_key) from {table} where run_id = 'run-a'")
        assert got == [(200, 4, 100)]
        row = w.fetch(f"select session_key, user_key, rank, sku, score, scored_at from {table} "
                      "where run_id = 'run-a' and session_key = 's0' and rank = 2")  # fmt: skip
        assert row == [("s0", "u0", 2, "sku2", 0.5, t1)]

        def boom() -> None:
            raise RuntimeError("injected between the staging load and the swap")

        with pytest.raises(RecframeError, match="previous rows kept: injected"):
            w.replace_rows(RECOMMENDATIONS, RECOMMENDATIONS_DDL, _frame("run-a", 3, 1, t1), where, params, boom)
        assert w.fetch(f"select count(*) from {table} where run_id = 'run-a'") == [(200,)]

        t2 = datetime(2026, 1, 3, 0, 0, 0)
        w.replace_rows(RECOMMENDATIONS, RECOMMENDATIONS_DDL, _frame("run-a", 10, 3, t2), where, params)
        assert w.fetch(f"select count(*), max(scored_at) from {table} where run_id = 'run-a'") == [(30, t2)]
        assert w.fetch(f"select count(*) from {table} where run_id = 'run-b'") == [(10,)]


def test_registry_and_champion_view_in_snowflake(source, tmp_path):
    import json

    from recframe.registry import champion, promote_version, rollback

    with _deadline(240), SnowflakeWriter(source) as w:
        ensure_tables(w)
        reg = w.table("model_registry")
        for version in ("pop-1", "gru-2"):
            w.execute(
                f"insert into {reg} (tenant, model_version, run_id, model, metrics, is_champion) "
                "values (?, ?, ?, ?, ?, false)",
                ["default", version, f"run-{version}", version.split("-")[0], json.dumps({})],
            )
        promote_version(w, "default", "pop-1")
        promote_version(w, "default", "gru-2")
        assert champion(w, "default").model_version == "gru-2"
        t = datetime(2026, 1, 2)
        frame = _frame("run-gru-2", 4, 2, t).assign(model_version="gru-2")
        w.replace_rows(RECOMMENDATIONS, RECOMMENDATIONS_DDL, frame, "run_id = ?", ["run-gru-2"])
        assert w.fetch(f"select count(*) from {w.table('latest_recommendations')}") == [(8,)]
        assert rollback(w, "default") == ("gru-2", "pop-1")
        assert w.fetch(f"select count(*) from {w.table('latest_recommendations')}") == [(0,)]
