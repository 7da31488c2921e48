"""The dbt Cloud runner against a local server answering like the dbt Cloud API v2 (127.0.0.1 only)."""

from __future__ import annotations

import json
import socket
import time

import pytest

from recframe.datasource.dbt_cloud import DbtCloudJob
from recframe.interfaces import ConfigError, DataError, RecframeError
from tests.datasource.fake_dbt_cloud import FakeDbtCloud, FakeJob

TOKEN = "dbtc-secret-token-123"
MANIFEST = json.dumps({"nodes": {"model.recframe.x": {"resource_type": "model", "name": "x"}}, "sources": {}}).encode()


def _job(api: FakeDbtCloud, job_id: int, token: str = TOKEN, **kw) -> DbtCloudJob:
    cfg = {"base_url": api.base_url, "account_id": api.account_id, "job_id": job_id, "token": token, "poll_s": 0.05}
    return DbtCloudJob.from_config({**cfg, **kw})


@pytest.fixture
def api():
    jobs = {
        1: FakeJob("success", polls=2, manifest=MANIFEST),
        2: FakeJob("error", polls=1),
        3: FakeJob("cancelled", polls=0),
        4: FakeJob("hang"),
    }
    with FakeDbtCloud(TOKEN, jobs) as server:
        yield server


def test_success_sends_cause_and_token_header_polls_and_fetches_the_manifest(api, tmp_path):
    summary = _job(api, 1).run("recframe run 2026-01-01_12-00-00", target_dir=tmp_path / "target")
    assert summary["status"] == "success" and summary["job_id"] == 1 and summary["manifest"] is True
    assert json.loads((tmp_path / "target" / "manifest.json").read_text())["nodes"]
    trigger = next(r for r in api.requests if r["method"] == "POST")
    assert trigger["path"] == f"/api/v2/accounts/{api.account_id}/jobs/1/run/"
    assert trigger["body"]["cause"] == "recframe run 2026-01-01_12-00-00"
    assert all(r["authorization"] == f"Token {TOKEN}" for r in api.requests)
    polls = [r for r in api.requests if r["path"].endswith(f"/runs/{summary['run_id']}/")]
    assert len(polls) == 3  # two "running" answers, then success
    assert TOKEN not in json.dumps(summary) and TOKEN not in repr(_job(api, 1))


@pytest.mark.parametrize(("job_id", "word"), [(2, "error"), (3, "cancelled")])
def test_error_and_cancelled_runs_are_one_line_errors_naming_the_run(api, job_id, word):
    with pytest.raises(DataError) as e:
        _job(api, job_id).run("recframe run r1")
    msg = str(e.value)
    run_id = max(api.runs)
    assert f"dbt Cloud run {run_id} of job {job_id} ended with {word}" in msg
    assert f"/runs/{run_id}/" in msg  # the link to the run
    assert "\n" not in msg and TOKEN not in msg


def test_a_run_that_never_completes_times_out_naming_the_run(api):
    t0 = time.monotonic()
    with pytest.raises(DataError, match=r"dbt Cloud run \d+ of job 4 still running after 0.3 s"):
        _job(api, 4, timeout_s=0.3).run("recframe run r2")
    assert time.monotonic() - t0 < 10


def test_a_wrong_token_is_refused_in_one_line_without_echoing_it(api):
    with pytest.raises(RecframeError) as e:
        _job(api, 1, token="wrong-token-456").run("recframe run r3")
    msg = str(e.value)
    assert "refused the token (401: Invalid token.)" in msg and "DBT_CLOUD_API_TOKEN" in msg
    assert "wrong-token-456" not in msg and "\n" not in msg
    assert not api.runs  # nothing was triggered
    with pytest.raises(RecframeError, match="refused the token"):
        _job(api, 1, token="wrong-token-456").check()


def test_check_finds_the_job_or_fails_fast(api):
    _job(api, 1).check()
    with pytest.raises(RecframeError, match="answered 404 while looking up job 99: Job not found"):
        _job(api, 99).check()


def test_an_unreachable_api_is_one_line_and_quick():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    job = DbtCloudJob.from_config(
        {"base_url": f"http://127.0.0.1:{port}", "account_id": 1, "job_id": 1, "token": TOKEN, "request_timeout_s": 2}
    )
    t0 = time.monotonic()
    with pytest.raises(RecframeError, match=r"cannot reach dbt Cloud at http://127.0.0.1:\d+ while triggering job 1"):
        job.run("recframe run r4")
    assert time.monotonic() - t0 < 10


@pytest.mark.parametrize(
    ("cfg", "key"),
    [
        ({"job_id": 1, "token": "t"}, "datasource.dbt.cloud.account_id"),
        ({"account_id": 1, "token": "t"}, "datasource.dbt.cloud.job_id"),
        ({"account_id": 1, "job_id": 1}, "datasource.dbt.cloud.token"),
        ({"account_id": "abc", "job_id": 1, "token": "t"}, "datasource.dbt.cloud.account_id"),
        ({"account_id": 1, "job_id": 1, "token": "t", "base_url": "ftp://x"}, "datasource.dbt.cloud.base_url"),
        ({"account_id": 1, "job_id": 1, "token": "t", "steps_override": "dbt build"}, "steps_override"),
        ({"account_id": 1, "job_id": 1, "token": "t", "colour": 1}, "datasource.dbt.cloud.colour"),
    ],
)
def test_bad_or_missing_settings_are_config_errors(cfg, key):
    with pytest.raises(ConfigError) as e:
        DbtCloudJob.from_config(cfg)
    assert key in str(e.value) and "\n" not in str(e.value)
    assert "'t'" not in str(e.value)  # a token value is never echoed


def test_steps_override_is_sent_with_the_trigger(api):
    _job(api, 1, steps_override=["dbt build --select session_sequences+"]).run("recframe run r5")
    trigger = next(r for r in api.requests if r["method"] == "POST")
    assert trigger["body"]["steps_override"] == ["dbt build --select session_sequences+"]
