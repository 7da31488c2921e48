"""A full disk or an over-limit file while a run writes: one clear line, and no half-written artifact.

Two real kernel failures, no mocks: ``RLIMIT_FSIZE`` on the child process (a write past the limit
fails with ``EFBIG``; ``SIGXFSZ`` ignored) and, where ``mount`` is allowed (root), a 256 KiB tmpfs
as the run directory (``ENOSPC``). The read-only case is the precheck in ``tests/test_cli.py``.
"""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from recframe.artifact import verify
from tests.helpers.toy import ToySource
from tests.reliability.runner import NO_DEPLOY, assert_one_line_error, run_cli

# 40 items, a 128-wide GRU: weights.pt ~400 KB, every JSON/YAML/CSV file of the run well under 64 KB
TRAIN = ["model=gru", "model.layers=[128]", "model.n_sample=16", "trainer.max_epochs=1", *NO_DEPLOY]


@pytest.fixture(scope="module")
def data_run(tmp_path_factory) -> Path:
    """A finished data step (toy Markov sessions, no dbt): the runs below train from it."""
    run = tmp_path_factory.mktemp("data") / "run"
    ToySource(n_sessions=600).load(run).save(run / "data")
    return run


def _limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write with EFBIG instead of dying
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def _no_partial_outputs(run_dir: Path) -> None:
    assert not (run_dir / "model.tmp").exists(), "a half-written artifact was left behind"
    model = run_dir / "model"
    if model.exists():
        verify(model)  # only a complete, checksummed artifact may exist
    assert not (run_dir / "metrics.json").exists()
    assert not list(run_dir.rglob("*.tmp")), list(run_dir.rglob("*.tmp"))


def test_file_size_limit_while_saving_the_model_is_one_line_and_leaves_no_partial_artifact(data_run, tmp_path):
    run_dir = tmp_path / "run"
    args = [*TRAIN, "steps=[train,test]", f"run.resume_from={data_run}", "trainer.enable_checkpointing=false"]
    args.append(f"hydra.run.dir={run_dir}")
    limited = run_cli(args, tmp_path / "home", preexec_fn=_limit_file_size(64 * 1024))
    line = assert_one_line_error(limited, "the train step could not write", "File too large", "hydra.run.dir")
    assert limited.returncode == 1, line
    _no_partial_outputs(run_dir)
    assert not (run_dir / "model").exists()


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    except (FileNotFoundError, PermissionError):
        return False
    return r.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="tmpfs is Linux")
def test_full_disk_during_training_is_one_line_then_the_same_command_recovers(data_run, tmp_path):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "256k"):
        pytest.skip("cannot mount a tmpfs here (needs root); the RLIMIT_FSIZE test covers the write path")
    try:
        run_dir = disk / "run"
        args = [*TRAIN, "steps=[train,test]", f"run.resume_from={data_run}", f"hydra.run.dir={run_dir}"]
        out = run_cli(args, tmp_path / "home")
        line = assert_one_line_error(out, "the train step could not write", "No space left on device")
        assert out.returncode == 1, line
        _no_partial_outputs(run_dir)
        assert not (run_dir / "model").exists()

        # room again: the same command completes (a checkpoint cut short by the full disk is not resumed)
        grown = subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], capture_output=True)
        assert grown.returncode == 0, grown.stderr
        again = run_cli(args, tmp_path / "home")
        assert again.returncode == 0, again.stderr[-3000:]
        assert verify(run_dir / "model")["n_items"] > 0 and (run_dir / "metrics.json").exists()
    finally:
        subprocess.run(["umount", str(disk)], check=False)
