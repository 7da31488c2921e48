"""The GRU4Rec stage of ``model=auto``: parameters sized to the data and the device, trained to fit the budget.

The parameters are those ``model=gru`` scales to the data and the device
(:func:`recframe.model.scaling.gru_defaults`: loss by data size, layer width, lanes and sampled
negatives by sessions, events and catalogue, smaller on CPU so an epoch stays affordable; the rest
the medians of the published per-data-set settings), with a shorter patience. Early stopping
scores a seeded sample of validation of the same size as the kNN trials' sample.

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
from recframe.model.auto.holdout import sample_indices
from recframe.model.auto.validset import MAX_TARGETS
from recframe.model.scaling import gru_defaults
from recframe.model.seq.gru import GRU4RecModel, training_device

log = logging.getLogger("recframe")

# what auto sets besides the data-scaled defaults: early stopping soon (the budget is short), and
# no resuming (a checkpoint from another search would skip the budget's accounting)
SHARED = {"patience": 2, "resume": False}
TRAIN_SHARE = 0.9  # of GRU4Rec's seconds, what the epochs themselves may use
MIN_SECONDS = 20.0  # below this GRU4Rec cannot finish an epoch on any but toy data: skip it


def gru_params(profile: Any, gpu: bool) -> dict[str, Any]:
    """GRU4Rec parameters for data of this profile on this device: the single model's data-scaled
    defaults (:func:`recframe.model.scaling.gru_defaults`) plus :data:`SHARED`."""
    return {**gru_defaults(profile, "cuda" if gpu else "cpu"), **SHARED}


def validation_sample(valid: pd.DataFrame, max_targets: int, seed: int) -> pd.DataFrame:
    """A seeded random subset of ``valid``'s sessions with about ``max_targets`` targets: what early
    stopping scores after each epoch (ranking the full catalogue on CPU costs as much as training)."""
    lengths = valid.groupby("session_id", sort=True, observed=True).size()
    picked = sample_indices(lengths.to_numpy() - 1, max_targets, seed)
    return valid if picked is None else valid[valid["session_id"].isin(set(lengths.index[picked]))]


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
    gpu = training_device(trainer) == "cuda"  # as model=gru decides, "auto" included
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
    model.fit(
        train, validation_sample(valid, MAX_TARGETS, ctx.seed), dataclasses.replace(ctx, trainer=trainer, work_dir=work)
    )
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
