"""Two runs sharing one DuckDB warehouse: they take turns (both succeed) or one stops with a clear
lock message; the warehouse is intact afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from recframe.datasource.warehouse import connect, warehouse_lock
from recframe.interfaces import DataError
from tests.reliability.runner import NO_DEPLOY, assert_one_line_error, cli_env, run_cli

DATA = ["datasource.synthetic.n_sessions=2000", "datasource.synthetic.n_items=200", "steps=[data]", *NO_DEPLOY]


def _marts(warehouse: Path) -> dict[str, int]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return {
            "loads": con.execute("select count(*) from raw.loads").fetchall()[0][0],
            "raw_events": con.execute("select count(*) from raw.events").fetchall()[0][0],
            "sessions": con.execute("select count(*) from main.session_sequences").fetchall()[0][0],
            "accepted": con.execute(
                "select coalesce(sum(n_events), 0) from main.int_sessions where reject_reason is null"
            ).fetchall()[0][0],
            "quarantined": con.execute("select coalesce(sum(n_rows), 0) from main.quarantine").fetchall()[0][0],
        }
    finally:
        con.close()


@pytest.mark.slow
def test_two_concurrent_data_steps_on_one_warehouse_both_succeed(tmp_path):
    home = tmp_path / "home"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "recframe", *DATA, f"hydra.run.dir={tmp_path / f'run{i}'}"],
            env=cli_env(home),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    errs = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=300)
        finally:
            if p.poll() is None:
                p.kill()
        errs.append(err)
    for p, err in zip(procs, errs, strict=True):
        assert p.returncode == 0, err[-3000:]
        assert "Traceback" not in err
    stats = [json.loads((tmp_path / f"run{i}" / "data" / "manifest.json").read_text())["stats"] for i in range(2)]
    for s in stats:
        assert s["rows_accounted"] and s["raw_rows"] == s["accepted"] + s["quarantined"]
    # the same input: one load, the later run skipped the ingest and saw the same sessions
    assert sorted(s["ingest_skipped"] for s in stats) == [False, True]
    assert stats[0]["train"] == stats[1]["train"] and stats[0]["test"] == stats[1]["test"]
    marts = _marts(home / "warehouse.duckdb")
    assert marts["loads"] == 1 and marts["raw_events"] == stats[0]["raw_rows"]
    assert marts["sessions"] > 0 and marts["accepted"] + marts["quarantined"] == stats[0]["raw_rows"]


def test_a_warehouse_held_by_another_process_is_one_clear_line(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    holder = duckdb.connect(str(home / "warehouse.duckdb"))  # a writer in this (other) process
    try:
        holder.execute("create table if not exists t as select 1 as x")
        out = run_cli([*DATA, f"hydra.run.dir={tmp_path / 'run'}"], home, timeout=300)
    finally:
        holder.close()
    line = assert_one_line_error(out, "warehouse.duckdb", "in use by another process", "datasource.warehouse")
    assert out.returncode == 1, line
    assert not (tmp_path / "run" / "data" / "manifest.json").exists()


def test_connect_translates_only_lock_errors(tmp_path):
    wh = tmp_path / "wh.duckdb"
    code = f"import duckdb, time; c = duckdb.connect({str(wh)!r}); print('ok', flush=True); time.sleep(30)"
    other = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "ok"
        with pytest.raises(DataError, match=r"in use by another process \(PID \d+\)") as e:
            connect(wh)
        assert "\n" not in str(e.value)
    finally:
        other.kill()
        other.wait()
    connect(wh).close()  # free again once the holder is gone
    with pytest.raises(duckdb.Error):  # anything else is not dressed up as a lock problem
        connect(tmp_path / "no" / "such" / "dir" / "wh.duckdb", read_only=True)


def test_warehouse_lock_makes_runs_wait_then_stops_with_one_line(tmp_path):
    wh = tmp_path / "wh.duckdb"
    with warehouse_lock(wh):
        t0 = time.monotonic()
        with pytest.raises(DataError, match="locked by another recframe run") as e, warehouse_lock(wh, timeout=0.5):
            pass
        assert time.monotonic() - t0 >= 0.5
        assert "\n" not in str(e.value) and "RECFRAME_WAREHOUSE_LOCK_TIMEOUT" in str(e.value)
    with warehouse_lock(wh, timeout=0.5):  # released: taken at once
        pass
