"""``kill -9`` during training, then the same command again: the run resumes from ``last.ckpt`` and
ends on the same weights and metrics as a run that was never interrupted (CPU, same seed)."""

from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from recframe.interfaces import FitContext
from recframe.model.seq.gru import GRU4RecModel
from tests.helpers.toy import markov_events
from tests.reliability.runner import NO_DEPLOY, SMALL_DATA, cli_env, run_cli

# small enough for ~2 s epochs; a negative-sample cache that is refilled across epoch boundaries
GRU = ["model=gru", "model.layers=[64]", "model.n_sample=128", "model.sample_cache_size=100000", "model.patience=0"]
EPOCHS = 6


def _epochs_done(run_dir: Path) -> int:
    path = run_dir / "train" / "metrics.csv"
    if not path.exists():
        return 0
    try:
        with path.open(newline="") as f:
            return len(list(csv.DictReader(f)))
    except OSError:
        return 0


def _numeric(metrics: dict) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            out.update({f"{k}.{kk}": vv for kk, vv in _numeric(v).items()})
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = float(v)
    return out


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "model" / "weights.pt", map_location="cpu", weights_only=True)


@pytest.mark.slow
def test_kill_9_during_training_then_resume_reaches_the_same_metrics(tmp_path):
    # enough sessions for epochs of a few seconds, so the kill lands inside epoch 3 or later
    args = [*SMALL_DATA, "datasource.synthetic.n_sessions=16000", *NO_DEPLOY, *GRU, f"trainer.max_epochs={EPOCHS}"]
    args.append("seed=7")
    home = tmp_path / "home"

    straight = tmp_path / "straight"
    ref = run_cli([*args, f"hydra.run.dir={straight}"], home, timeout=400)
    assert ref.returncode == 0, ref.stderr[-3000:]

    run_dir = tmp_path / "killed"
    cmd = [sys.executable, "-m", "recframe", *args, f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(cmd, env=cli_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        # at least two finished epochs (so the best epoch may lie before the kill), then mid-epoch
        while _epochs_done(run_dir) < 2:
            assert proc.poll() is None, f"exited before the kill: {proc.stderr.read()[-3000:]}"
            assert time.time() < deadline, "training did not reach epoch 2"
            time.sleep(0.2)
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    killed_after = _epochs_done(run_dir)
    assert 2 <= killed_after < EPOCHS
    assert (run_dir / "train" / "checkpoints" / "last.ckpt").exists()
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "model").exists()

    resumed = run_cli([*args, f"hydra.run.dir={run_dir}"], home, timeout=400)  # the same command again
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    fit = json.loads((run_dir / "model" / "model.json").read_text())["config"]["fit"]
    assert str(fit["resumed_from"]).endswith("last.ckpt"), fit
    assert fit["epochs"] == EPOCHS

    a = _numeric(json.loads((straight / "metrics.json").read_text()))
    b = _numeric(json.loads((run_dir / "metrics.json").read_text()))
    assert a.keys() == b.keys() and len(a) > 20
    diffs = {k: abs(a[k] - b[k]) for k in a}
    assert max(diffs.values()) <= 1e-6, {k: d for k, d in diffs.items() if d > 1e-6}
    wa, wb = _weights(straight), _weights(run_dir)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # the per-epoch curve of the resumed run repeats the uninterrupted one
    assert (straight / "train" / "metrics.csv").read_text() == (run_dir / "train" / "metrics.csv").read_text()


def _fit(train, valid, work_dir: Path, epochs: int) -> GRU4RecModel:
    model = GRU4RecModel(
        layers=[32], n_sample=16, sample_cache_size=2000, dropout_p_hidden=0.2, batch_size=16, patience=0
    )
    ctx = FitContext(
        trainer={"accelerator": "cpu", "max_epochs": epochs, "cpu_threads": 1, "enable_checkpointing": True},
        work_dir=work_dir,
        seed=3,
        progress=False,
    )
    return model.fit(train, valid, ctx)


def test_resume_from_an_epoch_checkpoint_equals_an_uninterrupted_fit(tmp_path):
    """In-process and fast: 2 epochs, stop, resume to 5 == 5 straight (dropout, negatives, best epoch)."""
    train = markov_events(400, n_items=40, seed=1)
    valid = markov_events(60, n_items=40, seed=2, start_session=10_000)
    straight = _fit(train, valid, tmp_path / "a", 5)
    _fit(train, valid, tmp_path / "b", 2)
    resumed = _fit(train, valid, tmp_path / "b", 5)
    assert str(resumed.fit_summary["resumed_from"]).endswith("last.ckpt")
    assert resumed.fit_summary["best_val_mrr@20"] == straight.fit_summary["best_val_mrr@20"]
    sa, sb = straight.net.state_dict(), resumed.net.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    # and a fresh start in an empty directory is not "resumed"
    shutil.rmtree(tmp_path / "b")
    assert _fit(train, valid, tmp_path / "b", 1).fit_summary["resumed_from"] is None
