"""The GRU4Rec stage of ``model=auto``: parameters sized to the data and the device, trained to fit the budget.

Sizes follow the data: a wider layer, a larger batch of session-parallel lanes and more sampled
negatives pay off on many sessions and a large catalogue, and cost time that a small data set does
not repay. A GPU gets the larger sizes, where they cost little. The rest are the medians of the
published per-data-set GRU4Rec parameters (Hidasi & Czapp 2023: Yoochoose, Diginetica, Retailrocket,
REES46, Coveo): a setting no single data set was tuned for.

Training stops at the first of: early stopping on validation MRR@20, the epoch cap
(``model.max_epochs``), or, in time mode, the GRU4Rec share of the budget: after each epoch
:class:`EpochBudget` stops the run when the time left would not cover another epoch as long as the
last one, and Lightning's ``max_time`` cuts an epoch that alone would overrun the share.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import lightning as L
import pandas as pd

from recframe.interfaces import FitContext
from recframe.model.seq.gru import GRU4RecModel

log = logging.getLogger("recframe")

# medians of the published per-data-set parameters (conf/experiment/gru4rec_*.yaml)
SHARED = {
    "loss": "bpr-max",
    "constrained_embedding": True,
    "embedding": 0,
    "elu_param": 1.0,
    "dropout_p_embed": 0.45,
    "dropout_p_hidden": 0.05,
    "learning_rate": 0.05,
    "momentum": 0.15,
    "sample_alpha": 0.3,
    "bpreg": 1.85,
    "logq": 0.0,
    "patience": 2,
    "resume": False,
}
TRAIN_SHARE = 0.9  # of GRU4Rec's seconds, what the epochs themselves may use
MIN_SECONDS = 20.0  # below this GRU4Rec cannot finish an epoch on any but toy data: skip it


def on_gpu(trainer: dict[str, Any]) -> bool:
    return str(trainer.get("accelerator", "cpu")).lower() in ("gpu", "cuda")


def gru_params(profile: Any, gpu: bool) -> dict[str, Any]:
    """GRU4Rec parameters for data of this profile on this device (see the module docstring)."""
    sessions, items = int(profile.sessions), int(profile.items)
    if gpu:
        width = 512 if sessions >= 20_000 else 256 if sessions >= 2_000 else 64
        batch = 256 if sessions >= 100_000 else 128 if sessions >= 10_000 else 32
        negatives = 2048
    else:
        width = 256 if sessions >= 50_000 else 128 if sessions >= 5_000 else 64
        batch = 256 if sessions >= 100_000 else 128 if sessions >= 20_000 else 32
        negatives = 1024
    batch = max(1, min(batch, sessions // 4 or 1))
    negatives = int(min(negatives, max(0, items // 4)))
    return {**SHARED, "layers": [width], "batch_size": batch, "n_sample": negatives}


class EpochBudget(L.Callback):
    """Stops training after an epoch when the seconds left would not cover another one like it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.t0 = time.perf_counter()
        self.epoch_t0 = self.t0
        self.stopped_by_budget = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.t0 = time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch_t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        now = time.perf_counter()
        if (now - self.t0) + (now - self.epoch_t0) > self.seconds and not trainer.should_stop:
            trainer.should_stop = True
            self.stopped_by_budget = True


def fit_gru(
    train: pd.DataFrame, valid: pd.DataFrame, profile: Any, ctx: FitContext, max_epochs: int, seconds: float | None
) -> tuple[GRU4RecModel, dict[str, Any]]:
    """Train GRU4Rec on ``train`` with early stopping on ``valid``; ``seconds=None`` is trial mode."""
    trainer = dict(ctx.trainer or {})
    gpu = on_gpu(trainer)
    params = gru_params(profile, gpu)
    trainer["max_epochs"] = int(max_epochs)
    if not gpu:
        trainer["cpu_threads"] = None  # wide layers: all cores are faster (docs/benchmarks.md)
    guard = None
    if seconds is not None:
        seconds *= TRAIN_SHARE  # the rest: starting the trainer, scoring validation afterwards
        guard = EpochBudget(seconds)
        trainer["callbacks"] = [*list(trainer.get("callbacks") or []), guard]
        trainer["max_time"] = {"seconds": max(1, int(seconds))}
    model = GRU4RecModel(**params)
    work = None if ctx.work_dir is None else ctx.work_dir / "gru"
    t0 = time.perf_counter()
    model.fit(train, valid, dataclasses.replace(ctx, trainer=trainer, work_dir=work))
    info = {
        "params": params,
        "device": "gpu" if gpu else "cpu",
        "max_epochs": int(max_epochs),
        "seconds_allowed": None if seconds is None else round(seconds, 1),
        "seconds": round(time.perf_counter() - t0, 3),
        "epochs": model.epochs_run,
        "best_val_mrr@20": model.fit_summary.get("best_val_mrr@20"),
        "stopped_by_budget": bool(guard and guard.stopped_by_budget),
    }
    log.info("model=auto: GRU4Rec trained %s epochs in %.1fs", info["epochs"], info["seconds"])
    return model, info
