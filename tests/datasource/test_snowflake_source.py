"""SnowflakeSource end to end against a real fakesnow server on 127.0.0.1 (the real connector and dbt-snowflake).

Each test that needs Snowflake gets a fresh ``fakesnow -s`` process (after a failed statement fakesnow
keeps the transaction aborted, and the connector would retry for minutes), and runs under an alarm so a
hang fails the test instead of the suite.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("snowflake.connector")
pytest.importorskip("fakesnow")
pytest.importorskip("dbt.adapters.snowflake")

from recframe.cli import main  # noqa: E402
from recframe.datasource.duckdb import DuckDBSource  # noqa: E402
from recframe.datasource.snowflake import SnowflakeSource  # noqa: E402
from recframe.interfaces import ConfigError, DataError, RecframeError  # noqa: E402
from tests.datasource.fake_dbt_cloud import FakeDbtCloud, FakeJob  # noqa: E402

pytestmark = pytest.mark.snowflake

PASSWORD = "pw-Zq8-never-on-disk"
SYNTHETIC = {"n_sessions": 300, "n_items": 60, "n_days": 10, "seed": 3}
SPLIT = {"test_days": 2, "valid_days": 1}
SF_ENV = ("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_PASSWORD", "SNOWFLAKE_HOST", "SNOWFLAKE_PORT",
          "SNOWFLAKE_PROTOCOL", "SNOWFLAKE_ROLE", "SNOWFLAKE_WAREHOUSE")  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _deadline(seconds: int):
    """Fail (rather than hang) when the block runs past ``seconds`` (SIGALRM; tests run in the main thread)."""

    def on_alarm(signum, frame):
        raise TimeoutError(f"test ran past its {seconds} s deadline")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def fakesnow_port(tmp_path):
    """A fresh fakesnow server process on 127.0.0.1 with an empty RECFRAME database."""
    port = _free_port()
    log = open(tmp_path / "fakesnow.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "fakesnow", "-s", "-p", str(port), "--host", "127.0.0.1"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "SNOWFLAKE_DISABLE_PLATFORM_DETECTION": "true"},
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"fakesnow did not start: {(tmp_path / 'fakesnow.log').read_text()[-500:]}"
                    ) from None
                time.sleep(0.1)
        con = _source(port).connect()
        con.cursor().execute("create database if not exists RECFRAME")
        con.close()
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _source(port: int, **kw) -> SnowflakeSource:
    args = {
        "account": "fakesnow",
        "user": "recframe",
        "password": PASSWORD,
        "host": "127.0.0.1",
        "port": port,
        "protocol": "http",
        "login_timeout": 10,
        "network_timeout": 10,
        "synthetic": SYNTHETIC,
        "split": SPLIT,
    }
    return SnowflakeSource(**{**args, **kw})


def _assert_no_secret_under(*roots: Path) -> None:
    for root in roots:
        for f in root.rglob("*"):
            if f.is_file():
                assert PASSWORD.encode() not in f.read_bytes(), f"password written to {f}"


def _assert_same_dataset(a, b) -> None:
    for name in ("train", "valid", "test"):
        fa, fb = getattr(a, name), getattr(b, name)
        assert len(fa) > 0, name
        pd.testing.assert_frame_equal(fa, fb, check_dtype=True, obj=name)
    pd.testing.assert_frame_equal(a.items, b.items, check_dtype=False, obj="items")
    for key in ("raw_rows", "accepted", "quarantined", "quarantine_reasons", "query", "straddling_dropped",
                "test_unseen", "valid_unseen", "train", "valid", "test", "targets"):  # fmt: skip
        assert a.stats[key] == b.stats[key], key


# ------------------------------------------------------------------------------------------------
# fail fast: settings and connectivity (no server needed)


def test_missing_settings_are_a_one_line_config_error():
    with pytest.raises(ConfigError) as e:
        SnowflakeSource(account=None, user="u", password="p").check()
    assert "datasource.account" in str(e.value) and "SNOWFLAKE_ACCOUNT" in str(e.value)
    with pytest.raises(ConfigError) as e:
        SnowflakeSource(account="a", user="u", password=None).check()
    assert "datasource.password" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("kw", "key"),
    [
        ({"database": 'x"; drop table t; --'}, "datasource.database"),
        ({"schema": "has space"}, "datasource.schema"),
        ({"raw_schema": "1abc"}, "datasource.raw_schema"),
        ({"tenant": "it's"}, "datasource.tenant"),
        ({"port": 0}, "datasource.port"),
        ({"protocol": "ftp"}, "datasource.protocol"),
        ({"dbt": {"runner": "remote"}}, "datasource.dbt.runner"),
        ({"dbt": {"runner": "cloud", "cloud": {"account_id": 1, "job_id": 2}}}, "datasource.dbt.cloud.token"),
    ],
)
def test_bad_identifiers_and_settings_fail_at_construction(kw, key):
    with pytest.raises(ConfigError) as e:
        SnowflakeSource(account="a", user="u", password="p", **kw)
    assert key in str(e.value)


def test_cli_without_credentials_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    for k in SF_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("RECFRAME_HOME", str(tmp_path))
    code = main(["datasource=snowflake", "steps=[data]", f"hydra.run.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "datasource.account" in err and "SNOWFLAKE_ACCOUNT" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_wrong_port_is_a_quick_one_line_error():
    src = _source(_free_port(), login_timeout=5, network_timeout=5)
    t0 = time.monotonic()
    with _deadline(60), pytest.raises(RecframeError) as e:
        src.check()
    elapsed = time.monotonic() - t0
    msg = str(e.value)
    assert not isinstance(e.value, ConfigError)
    assert msg.startswith("cannot connect to Snowflake at http://127.0.0.1:") and "\n" not in msg
    assert PASSWORD not in msg and PASSWORD not in repr(src)
    assert elapsed < 20, elapsed


# ------------------------------------------------------------------------------------------------
# end to end against fakesnow


def test_snowflake_and_duckdb_give_identical_sessions(fakesnow_port, tmp_path):
    """Same raw input through both warehouses: identical sessions, splits, items and row accounting."""
    with _deadline(300):
        src = _source(fakesnow_port, state_dir=str(tmp_path / "state"))
        src.check()
        t0 = time.perf_counter()
        sf = src.load(tmp_path / "sf_run" / "data")
        sf_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        duck = DuckDBSource(warehouse=tmp_path / "wh.duckdb", synthetic=SYNTHETIC, split=SPLIT).load(
            tmp_path / "duck_run" / "data"
        )
        duck_s = time.perf_counter() - t0
    print(f"snowflake(fakesnow) load {sf_s:.1f} s, duckdb load {duck_s:.1f} s, timings {sf.stats['timings']}")
    _assert_same_dataset(sf, duck)
    assert sf.stats["source"] == "snowflake" and sf.stats["rows_accounted"] and not sf.stats["ingest_skipped"]
    # the marts' order is checked here in full (under fakesnow dbt's list_is_sorted compares the ends only)
    for frame in (sf.train, sf.valid, sf.test):
        sid, ts = frame["session_id"].to_numpy(), frame["ts"].to_numpy()
        same = sid[1:] == sid[:-1]
        assert np.all(~same | (ts[1:] >= ts[:-1]))
    assert (tmp_path / "sf_run" / "data" / "lineage.json").exists()
    assert (tmp_path / "sf_run" / "data" / "target" / "manifest.json").exists()
    _assert_no_secret_under(tmp_path)
    assert "SNOWFLAKE_PASSWORD" not in os.environ or os.environ["SNOWFLAKE_PASSWORD"] != PASSWORD


@pytest.mark.slow
def test_reingesting_the_same_input_is_skipped_and_sessions_are_unchanged(fakesnow_port, tmp_path):
    with _deadline(400):
        src = _source(fakesnow_port, state_dir=str(tmp_path / "state"))
        first = src.load(tmp_path / "r1" / "data")
        again = src.load(tmp_path / "r2" / "data")
    assert again.stats["ingest_skipped"] and again.stats["etl_id"] == first.stats["etl_id"]
    _assert_same_dataset(first, again)
    con = src.connect()
    try:
        n_loads = con.cursor().execute('select count(*) from "RECFRAME"."RAW".LOADS').fetchall()[0][0]
    finally:
        con.close()
    assert n_loads == 1


def test_cloud_runner_failures_stop_the_data_step_in_one_line(fakesnow_port, tmp_path):
    """A refused token fails check() before any ingest; a failed dbt Cloud run stops load() naming the run."""
    token = "dbtc-token-never-on-disk"
    jobs = {5: FakeJob("error", polls=1)}
    with FakeDbtCloud(token, jobs) as api, _deadline(120):
        cloud = {"base_url": api.base_url, "account_id": api.account_id, "job_id": 5, "token": token, "poll_s": 0.1}
        bad = _source(fakesnow_port, dbt={"runner": "cloud", "cloud": {**cloud, "token": "nope"}})
        with pytest.raises(RecframeError, match="refused the token"):
            bad.check()
        src = _source(fakesnow_port, dbt={"runner": "cloud", "cloud": cloud})
        with pytest.raises(DataError) as e:
            src.load(tmp_path / "run" / "data")
    msg = str(e.value)
    run_id = max(api.runs)
    assert msg.startswith(f"dbt Cloud run {run_id} of job 5 ended with error") and f"/runs/{run_id}/" in msg
    assert "\n" not in msg and token not in msg
    assert api.runs[run_id].cause == "recframe run run"


@pytest.mark.slow
def test_cloud_runner_triggers_a_job_that_builds_the_marts(fakesnow_port, tmp_path):
    """runner=cloud: recframe ingests, the (fake) dbt Cloud job builds the marts on fakesnow, recframe reads them."""
    token = "dbtc-token-never-on-disk"
    builder = _source(fakesnow_port, state_dir=str(tmp_path / "cloud_state"))
    job_dir = tmp_path / "cloud_job"

    def job_work(body: dict) -> None:  # what the dbt Cloud job does: dbt build --target snowflake
        builder._dbt(["build"], job_dir)

    jobs = {42: FakeJob("success", polls=0, work=job_work, manifest=job_dir / "target" / "manifest.json")}
    with FakeDbtCloud(token, jobs) as api, _deadline(400):
        cloud = {"base_url": api.base_url, "account_id": api.account_id, "job_id": 42, "token": token, "poll_s": 0.2}
        src = _source(fakesnow_port, dbt={"runner": "cloud", "cloud": cloud})
        src.check()
        run_dir = tmp_path / "2026-01-02_03-04-05"
        ds = src.load(run_dir / "data")
    trigger = next(r for r in api.requests if r["method"] == "POST")
    assert trigger["body"]["cause"] == "recframe run 2026-01-02_03-04-05"
    assert ds.stats["dbt_runner"] == "cloud" and ds.stats["dbt_cloud_run"]["status"] == "success"
    assert ds.stats["rows_accounted"] and len(ds.train) and len(ds.test)
    assert (run_dir / "data" / "lineage.json").exists()
    duck = DuckDBSource(warehouse=tmp_path / "wh.duckdb", synthetic=SYNTHETIC, split=SPLIT).load(tmp_path / "d")
    _assert_same_dataset(ds, duck)
    for root in (tmp_path,):
        for f in root.rglob("*"):
            if f.is_file():
                assert token.encode() not in f.read_bytes(), f


@pytest.mark.slow
def test_cli_data_step_on_snowflake_reads_settings_from_the_environment(fakesnow_port, tmp_path, monkeypatch):
    """``recframe datasource=snowflake steps=[data]`` with credentials only in the environment."""
    env = {
        "SNOWFLAKE_ACCOUNT": "fakesnow",
        "SNOWFLAKE_USER": "recframe",
        "SNOWFLAKE_PASSWORD": PASSWORD,
        "SNOWFLAKE_HOST": "127.0.0.1",
        "SNOWFLAKE_PORT": str(fakesnow_port),
        "SNOWFLAKE_PROTOCOL": "http",
        "RECFRAME_HOME": str(tmp_path / "home"),
    }
    run_dir = tmp_path / "run"
    args = ["datasource=snowflake", "steps=[data]", f"hydra.run.dir={run_dir}"]
    args += [f"datasource.synthetic.{k}={v}" for k, v in SYNTHETIC.items()]
    args += [f"datasource.split.{k}={v}" for k, v in SPLIT.items()]
    out = subprocess.run(
        [sys.executable, "-m", "recframe", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (run_dir / "data" / "manifest.json").exists() and (run_dir / "data" / "lineage.json").exists()
    _assert_no_secret_under(tmp_path)
    assert PASSWORD not in out.stdout + out.stderr
