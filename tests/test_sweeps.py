"""Sweeps end to end through the real CLI: multirun, a failing job, Optuna, joblib; and the leaderboard.

The jobs run on a small synthetic data set through the real ``files`` data source with fast models
(pop, sknn) and no deployment, each sweep writing under ``tmp_path`` with its own ``RECFRAME_HOME``.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from recframe.sweep import LeaderboardCallback, summarize_sweep
from tests.helpers.cli import ROOT, fast_overrides, run_cli


# ------------------------------------------------------------------------------------ helpers
def read_leaderboard(sweep_dir: Path) -> list[dict[str, str]]:
    with (sweep_dir / "leaderboard.csv").open() as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------------ leaderboard unit tests
def fake_job(sweep: Path, num: int, overrides: list[str], metrics: dict | None, config: dict | None = None) -> Path:
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), job / ".hydra" / "overrides.yaml")
    OmegaConf.save(OmegaConf.create(config or {"model": {"k": num}}), job / ".hydra" / "config.yaml")
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))
    else:
        (job / "cli.log").write_text(f"[2026-01-01][ERROR] job {num} failed: invalid config model.k=0\n")
    return job


def test_leaderboard_ranks_jobs_lists_failures_and_masks_secrets_in_best(tmp_path):
    sweep = tmp_path / "sweep"
    secret = {"datasource": {"password": "hunter22"}, "model": {"k": 2}}
    fake_job(sweep, 0, ["model.k=1", "datasource.password=hunter22"], {"model": "sknn", "mrr@20": 0.2})
    fake_job(sweep, 1, ["model.k=0", "datasource.password=hunter22"], None)
    fake_job(sweep, 2, ["model.k=2", "datasource.password=hunter22"], {"model": "sknn", "mrr@20": 0.3}, secret)

    summary = summarize_sweep(sweep)

    rows = read_leaderboard(sweep)
    assert [r["job"] for r in rows] == ["2", "0", "1"]
    assert [r["status"] for r in rows] == ["ok", "ok", "failed"]
    assert rows[0]["params"] == "model.k=2"  # only what the sweep varied
    assert "invalid config model.k=0" in rows[2]["error"]
    assert summary["best"]["job"] == "2" and summary["failed"] == 1
    best = OmegaConf.load(sweep / "best.yaml")
    assert best.value == 0.3 and best.objective == "mrr@20"
    assert "hunter22" not in (sweep / "best.yaml").read_text()
    assert best.config.datasource.password == "***"
    page = (sweep / "leaderboard.html").read_text()
    assert "<table>" in page and "failed" in page and "hunter22" not in page


def test_a_job_that_failed_after_testing_is_not_ranked(tmp_path):
    sweep = tmp_path / "s"
    fake_job(sweep, 0, ["a=1"], {"mrr@20": 0.9})
    (sweep / "0" / "cli.log").write_text("[x][ERROR] job 0 failed: not deploying: gate hr@20 FAILED\n")
    fake_job(sweep, 1, ["a=2"], {"mrr@20": 0.1})
    summary = summarize_sweep(sweep)
    rows = read_leaderboard(sweep)
    assert summary["best"]["job"] == "1" and rows[1]["status"] == "failed" and "gate" in rows[1]["error"]
    assert rows[1]["mrr@20"] == "0.9"  # its metrics stay visible


def test_leaderboard_prefers_validation_mrr_and_drops_a_stale_best(tmp_path):
    sweep = tmp_path / "s"
    fake_job(sweep, 0, ["a=1"], {"mrr@20": 0.9, "val_mrr@20": 0.1})
    fake_job(sweep, 1, ["a=2"], {"mrr@20": 0.1, "val_mrr@20": 0.5})
    assert summarize_sweep(sweep)["best"]["job"] == "1"  # selection on validation, not on test

    empty = tmp_path / "all_failed"
    fake_job(empty, 0, ["a=1"], None)
    (empty / "best.yaml").write_text("stale: true\n")
    assert summarize_sweep(empty)["best"] is None
    assert not (empty / "best.yaml").exists()


def test_the_callback_is_registered_and_leaves_single_runs_alone(tmp_path, compose_config):
    cfg = compose_config("model=pop")
    node = cfg.hydra.callbacks.leaderboard
    assert node._target_ == "recframe.sweep.LeaderboardCallback"
    cb = LeaderboardCallback(**{k: v for k, v in node.items() if k != "_target_"})
    cb.on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "missing")}}}))
    assert not (tmp_path / "missing").exists()


# ------------------------------------------------------------------------------------ real sweeps
def test_two_by_two_multirun_survives_a_failing_job_and_ends_with_a_leaderboard(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "model=pop,sknn", "tester.k=20,0", *fast_overrides(tmp_path / "data"), f"hydra.sweep.dir={sweep}"]
    proc = run_cli(args, tmp_path / "home")
    assert proc.returncode == 0, proc.stderr[-3000:]

    rows = read_leaderboard(sweep)
    assert len(rows) == 4
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 2 and all("tester.k=0" in r["params"] for r in failed)
    assert all("tester.k" in r["error"] for r in failed)
    ok = [r for r in rows if r["status"] == "ok"]
    assert [r["rank"] for r in ok] == ["1", "2"]
    best = OmegaConf.load(sweep / "best.yaml")
    assert best.value == max(float(r["objective"]) for r in ok)
    assert "tester.k=20" in best.overrides
    assert (sweep / "leaderboard.html").exists()
    assert (sweep / "compare" / "leaderboard.html").exists()  # the comparison page too
    assert "leaderboard" in proc.stderr and "best: job" in proc.stderr


def test_optuna_presets_compose_with_a_maximising_sweeper(compose_config):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    for preset in ("optuna", "optuna_knn"):
        cfg = compose_config(f"hparams_search={preset}")
        sweeper = cfg.hydra.sweeper
        assert "optuna" in sweeper._target_.lower() and sweeper.direction == "maximize"
        assert sweeper.max_failure_rate == 1.0 and sweeper.params and cfg.hydra.mode.name == "MULTIRUN"
        assert cfg.deployer._target_.endswith("NoneDeployer")


def test_the_gru_search_space_names_real_model_keys(compose_config):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    cfg = compose_config("hparams_search=optuna")
    model_keys = set(cfg.model.keys())
    for key in cfg.hydra.sweeper.params:
        assert key.startswith("model.") and key.split(".", 1)[1] in model_keys, key


@pytest.mark.slow  # ~25-35 s on 2 shared cores
def test_optuna_sweep_of_six_trials_reports_the_best_mrr(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sweep = tmp_path / "optuna"
    args = ["hparams_search=optuna_knn", "hydra.sweeper.n_trials=6", *fast_overrides(tmp_path / "data")]
    proc = run_cli([*args, f"hydra.sweep.dir={sweep}"], tmp_path / "home")
    assert proc.returncode == 0, proc.stderr[-3000:]

    results = OmegaConf.load(sweep / "optimization_results.yaml")
    rows = read_leaderboard(sweep)
    assert len(rows) == 6 and all(r["status"] == "ok" for r in rows)
    best_value = max(float(r["objective"]) for r in rows)
    assert math.isclose(results.best_value, best_value)
    assert 0.0 < best_value <= 1.0
    assert math.isclose(OmegaConf.load(sweep / "best.yaml").value, best_value)
    assert "Best value" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_optuna_records_a_failed_trial_and_goes_on(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sweep = tmp_path / "optuna"
    args = ["-m", "hparams_search=optuna_knn", "hydra.sweeper.n_trials=4", "tester.k=choice(20,0)"]
    proc = run_cli([*args, *fast_overrides(tmp_path / "data"), f"hydra.sweep.dir={sweep}"], tmp_path / "home")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_leaderboard(sweep)
    assert len(rows) == 4
    assert {r["status"] for r in rows if "tester.k=0" in r["params"]} <= {"failed"}


# ------------------------------------------------------------------------------------ launchers
def test_launcher_configs_compose_or_say_what_to_install(compose_config):
    for name, plugin in (("parallel", "hydra_plugins.hydra_joblib_launcher"),
                         ("slurm", "hydra_plugins.hydra_submitit_launcher")):  # fmt: skip
        text = (ROOT / "conf" / "hydra" / "launcher" / f"{name}.yaml").read_text()
        assert "pip install" in text  # the file itself says which plugin it needs
        if importlib.util.find_spec(plugin) is None:
            continue
        launcher = compose_config(f"hydra/launcher={name}").hydra.launcher
        assert name != "parallel" or (launcher.n_jobs == 2 and "Joblib" in launcher._target_)


def test_slurm_launcher_composes_when_submitit_is_installed(compose_config):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="hydra-submitit-launcher not installed")
    launcher = compose_config("hydra/launcher=slurm").hydra.launcher
    assert "Slurm" in launcher._target_ and launcher.timeout_min == 240


@pytest.mark.slow
def test_joblib_launcher_runs_jobs_in_parallel_processes(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    sweep = tmp_path / "par"
    args = ["-m", "hydra/launcher=parallel", "model=sknn", "model.k=20,50", *fast_overrides(tmp_path / "data")]
    proc = run_cli([*args, f"hydra.sweep.dir={sweep}"], tmp_path / "home")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_leaderboard(sweep)
    assert sorted(r["params"] for r in rows) == ["model.k=20", "model.k=50"]
    assert all(r["status"] == "ok" for r in rows)


def test_the_leaderboard_can_be_rebuilt_from_the_command_line(tmp_path, capsys):
    from recframe.sweep import main

    fake_job(tmp_path / "s", 0, ["a=1"], {"mrr@20": 0.2})
    assert main([str(tmp_path / "s")]) == 0
    assert (tmp_path / "s" / "leaderboard.csv").exists() and "best: job 0" in capsys.readouterr().err
    assert main([]) == 2 and main([str(tmp_path / "missing")]) == 2
