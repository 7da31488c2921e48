"""The command line: one-line config errors with exit code 2, --help, --cfg, and the whole loop."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from recframe.cli import job_config, main, precheck, split_overrides
from tests.helpers.cli import cli_env, fast_overrides, run_cli

SMALL_DATA = [
    "datasource.synthetic.n_sessions=4000",
    "datasource.synthetic.n_items=300",
]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("tester.k=0", "tester.k=0"),
        ("model=nope", "unknown option 'model/nope'"),
        ("datasource=nope", "available for datasource"),
        ("steps=[data,fly]", "steps"),
        ("seed=-1", "seed=-1"),
        ("+model.bogus=1", "bogus"),
        ("model.no_such_key=1", "no_such_key"),
        ("tester.ks=[5,0]", "tester.ks[1]=0"),
        ("deployer.port=-5", "deployer.port"),
        ("datasource.split.test_days=0", "datasource.split.test_days"),
        ("model.learning_rate=0", "model.learning_rate"),
        ("model.learning_rate=fast", "model.learning_rate"),
        ("model.batch_size=0", "model.batch_size"),
        ("model.loss=mse", "model.loss"),
        ("trainer=tpu", "available for trainer"),
        ("tracker=nope", "available for tracker"),
        ("deployer=sagemaker", "deployer.role_arn"),
        ("deployer.host=", "deployer.host"),
        ("datasource.raw.format=xml", "datasource.raw.format"),
        ("datasource.raw.path=/no/such/file.csv", "/no/such/file.csv"),
        ("datasource=files", "datasource"),
        ("run.resume_from=/no/such/run", "run.resume_from"),
        ("hydra.run.dir=/etc/passwd/run", "hydra.run.dir"),
        ("tester.gates={hr@20: 'about 0.5'}", "tester.gates"),
        ("steps=[test]", "run.resume_from"),
    ],
)
def test_bad_config_is_one_line_and_exit_2(override, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("RECFRAME_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    run_dir = [] if override.startswith("hydra.run.dir") else [f"hydra.run.dir={tmp_path / 'run'}"]
    code = main([override, *run_dir])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert expected in err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists(), "nothing may be written for a bad config"
    assert not (tmp_path / "outputs").exists()


def test_split_overrides_skips_flags_and_hydra_keys():
    argv = ["model=pop", "--cfg", "job", "hydra.run.dir=x", "hydra.verbose=true", "-p", "model"]
    overrides, check = split_overrides(argv)
    assert overrides == ["model=pop", "hydra.run.dir=x"] and check  # run dir kept: checked for writability
    assert split_overrides(["-m", "model=pop,gru"])[1] is False


def test_help_and_cfg_job_compose_every_cloud_option(tmp_path):
    help_out = run_cli(["--help"], tmp_path, timeout=120)
    assert help_out.returncode == 0, help_out.stderr
    assert "Config groups" in help_out.stdout and "deployer" in help_out.stdout
    for option in ("deployer=sagemaker", "deployer=seldon", "datasource=snowflake", "tracker=comet"):
        out = run_cli(["model=gru", option, "--cfg", "job"], tmp_path, timeout=120)
        assert out.returncode == 0, (option, out.stderr)
        assert "_target_" in out.stdout


def test_each_component_is_built_once_per_run_and_argv_is_left_alone(tmp_path):
    """The pre-check's instances are the ones the run uses; ``main(argv)`` does not change sys.argv."""
    args = ["model=pop", *fast_overrides(tmp_path / "data"), f"hydra.run.dir={tmp_path / 'run'}", "run.progress=false"]
    script = f"""
import collections, json, sys
import recframe.app as app
built = collections.Counter()
instantiate = app.instantiate_group
def counting(group, node):
    built[group] += 1
    return instantiate(group, node)
app.instantiate_group = counting
from recframe.cli import main
argv = list(sys.argv)
code = main({args!r})
print(json.dumps({{"code": code, "built": built, "argv_kept": sys.argv == argv}}))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env=cli_env(tmp_path / "home"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["code"] == 0 and out["argv_kept"]
    assert out["built"] == {"datasource": 1, "model": 1, "tester": 1, "deployer": 1, "tracker": 1}
    assert (tmp_path / "run" / "metrics.json").exists()


def test_prechecked_components_go_only_to_the_job_they_were_built_for(tmp_path, monkeypatch, compose_config):
    monkeypatch.setenv("RECFRAME_HOME", str(tmp_path / "home"))
    run_dir = f"hydra.run.dir={tmp_path / 'run'}"
    checked = precheck(["model=pop", "deployer=none", run_dir])
    assert type(checked.parts["model"]).__name__ == "PopModel"
    assert checked.config == job_config(compose_config("model=pop", "deployer=none"))
    assert checked.parts_for(compose_config("model=pop", "deployer=none", run_dir)) is checked.parts
    assert checked.parts_for(compose_config("model=pop", "deployer=none", "seed=7")) is None
    assert precheck(["model=pop", "deployer=none", "hydra.mode=MULTIRUN", run_dir]) is None
    if importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper"):  # a sweep preset: jobs build their own
        assert precheck(["hparams_search=optuna_knn", run_dir]) is None


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"recframe exited early: {proc.stderr.read()}")
        if time.time() > deadline:
            proc.kill()
            raise AssertionError(f"{path} did not appear in {timeout} s")
        time.sleep(0.5)


def test_default_pipeline_end_to_end_with_a_live_endpoint(tmp_path):
    """The whole loop from the command line on a small synthetic data set, endpoint kept alive."""
    run_dir = tmp_path / "run"
    env = cli_env(tmp_path / "home")
    args = [*SMALL_DATA, "deployer.keep_alive=true", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "recframe", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for(run_dir / "deploy.json", proc, timeout=400)
        deploy = json.loads((run_dir / "deploy.json").read_text())
        assert deploy["url"].startswith("http://127.0.0.1:") and deploy["smoke"]["passed"]
        url = deploy["url"]
        assert httpx.get(f"{url}/ping").status_code == 200
        vocab = json.loads((run_dir / "model" / "vocab.json").read_text())["items"]
        r = httpx.post(f"{url}/invocations", json={"session": vocab[:2], "k": 5})
        assert r.status_code == 200
        body = r.json()
        assert len(body["items"]) == 5 and len(body["scores"]) == 5
        assert not set(body["items"]) & set(vocab[:2]), "items already in the session are excluded"
        r = httpx.post(f"{url}/invocations", json={"sessions": [vocab[:1], ["unknown-sku"]], "k": 3})
        assert r.status_code == 200 and len(r.json()["results"]) == 2
        bad = httpx.post(f"{url}/invocations", content=b"{not json", headers={"content-type": "application/json"})
        assert 400 <= bad.status_code < 500 and "error" in bad.json()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    for path in (".hydra/config.yaml", "data/manifest.json", "model/checksums.json", "report/report.json",
                 "report/index.html", "metrics.json"):  # fmt: skip
        assert (run_dir / path).exists(), path
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["model"] == "gru"
    assert metrics["hr@20"] >= 1.5 * metrics["baseline_pop"]["hr@20"], metrics
