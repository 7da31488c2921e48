"""The submitit launchers (the ``cluster`` extra): a two-job sweep through ``hydra/launcher=submitit_local``
runs each job in its own process and ends with the leaderboard; the SLURM preset composes."""

from __future__ import annotations

import pytest

from tests.helpers.cli import fast_overrides, run_cli
from tests.test_sweeps import read_leaderboard

pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason='needs pip install "recframe[cluster]"')


def test_submitit_local_sweep_runs_two_processes_and_writes_the_leaderboard(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5", "model=sknn", "model.k=20,50"]
    args += [*fast_overrides(tmp_path / "data"), f"hydra.sweep.dir={sweep}"]
    proc = run_cli(args, tmp_path / "home", timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]

    rows = read_leaderboard(sweep)
    assert sorted(r["params"] for r in rows) == ["model.k=20", "model.k=50"]
    assert all(r["status"] == "ok" and 0.0 < float(r["objective"]) <= 1.0 for r in rows)
    # submitit's local executor names each job's folder after the process it started for it
    jobs = [d for d in (sweep / ".submitit").iterdir() if d.name.isdigit()]
    assert len(jobs) == 2
    for job in jobs:
        assert (job / f"{job.name}_0_result.pkl").exists() and (job / f"{job.name}_0_log.err").exists()
    assert "best: job" in proc.stderr


def test_the_slurm_preset_composes_onto_the_submitit_slurm_launcher(compose_config):
    launcher = compose_config("hydra/launcher=slurm", "hydra.launcher.partition=gpu").hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.partition == "gpu" and launcher.gpus_per_node == 1 and launcher.timeout_min == 240
    plain = compose_config("hydra/launcher=submitit_slurm").hydra.launcher
    assert plain._target_ == launcher._target_
