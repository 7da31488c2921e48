"""Lightning plumbing shared by the sequence models: trainer, validation metric, checkpoints, CSV.

``FitContext.trainer`` is a plain dict of ``lightning.Trainer`` arguments (the ``trainer`` config
group). :func:`run_fit` adds what every recframe training run needs on top of it:

* validation MRR@20 / HR@20 ranked over *all* items with conservative ties (the same definition as
  :mod:`recframe.evaluation`), computed batched on the training device;
* early stopping and a best checkpoint on validation MRR@20, plus ``last.ckpt`` for resuming;
* ``metrics.csv`` in the work directory (epoch, train_loss, val_mrr@20, val_hr@20), which the run
  report draws training curves from;
* restoring the best epoch's weights at the end, whether or not checkpoints are written.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import logging
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from recframe import atomic
from recframe.interfaces import FitContext
from recframe.model.seq.cpu_memory import keep_freed_memory
from recframe.model.seq.data import PAD, pad_sessions, prefix_batches

log = logging.getLogger("recframe")

MONITOR = "val_mrr@20"
CSV_FIELDS = ("epoch", "train_loss", "val_mrr@20", "val_hr@20")


def conservative_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1-based rank of each target counting every item that scores at least as high (ties lose)."""
    scores = torch.nan_to_num(scores.float(), nan=float("-inf"))
    tgt = scores.gather(1, targets.view(-1, 1))
    return (scores >= tgt).sum(dim=1)


class ValidationBatches(torch.utils.data.Dataset):
    """Valid sessions packed into right-padded ``(inputs, targets)`` matrices, ~``max_targets`` each.

    ``targets[i, t]`` is the item after position ``t`` (``PAD`` past the end), so one forward pass
    scores every position of every session in the batch.
    """

    def __init__(self, sessions: Sequence[np.ndarray], max_targets: int, max_len: int | None = None) -> None:
        self.batches: list[tuple[torch.Tensor, torch.Tensor]] = []
        for group in prefix_batches(sessions, max_targets):
            self.batches.append(padded_inputs_targets([sessions[i] for i in group], max_len))

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.batches[i]


def padded_inputs_targets(
    sessions: Sequence[np.ndarray], max_len: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded inputs (all but the last item) and targets (all but the first), ``PAD`` elsewhere.

    With ``max_len`` only the last ``max_len`` transitions of a session are kept (models with a
    bounded context); scoring longer sessions in full is the model's own ``score_prefixes`` job.
    """
    inputs = pad_sessions([s[:-1] for s in sessions], max_len)
    targets = pad_sessions([s[1:] for s in sessions], max_len)
    return torch.from_numpy(inputs), torch.from_numpy(targets)


class SequenceLightningModule(L.LightningModule):
    """Validation shared by sequence models: full-ranking MRR@20 and HR@20 on ``valid``.

    Subclasses implement ``training_step`` and :meth:`position_scores` (scores of every item for
    the masked positions of a padded batch).
    """

    recframe_vocab: str | None = None

    def position_scores(self, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["recframe_vocab"] = self.recframe_vocab
        # resuming must continue the same random streams (dropout, negatives) as an uninterrupted run
        checkpoint["recframe_rng"] = torch.get_rng_state()
        sampler = getattr(self, "_sampler", None)  # the models' NegativeSampler, if they draw negatives
        if sampler is not None and hasattr(sampler, "state_dict"):
            checkpoint["recframe_sampler"] = sampler.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if checkpoint.get("recframe_rng") is not None:
            torch.set_rng_state(checkpoint["recframe_rng"])
        # the sampler is built at the first epoch start: restored before the first batch
        self._resume_sampler_state = checkpoint.get("recframe_sampler")

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        state = self.__dict__.pop("_resume_sampler_state", None)
        sampler = getattr(self, "_sampler", None)
        if state is not None and sampler is not None and hasattr(sampler, "load_state_dict"):
            sampler.load_state_dict(state)

    def on_validation_epoch_start(self) -> None:
        self._val_hits = torch.zeros((), dtype=torch.float64, device=self.device)
        self._val_rr = torch.zeros((), dtype=torch.float64, device=self.device)
        self._val_n = 0

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        inputs, targets = batch
        mask = targets != PAD
        scores = self.position_scores(inputs, mask)
        ranks = conservative_ranks(scores, targets[mask])
        hit = ranks <= 20
        self._val_hits += hit.sum()
        self._val_rr += (hit.double() / ranks.double()).sum()
        self._val_n += int(mask.sum())

    def on_validation_epoch_end(self) -> None:
        n = max(self._val_n, 1)
        self.log(MONITOR, float(self._val_rr) / n, prog_bar=True)
        self.log("val_hr@20", float(self._val_hits) / n, prog_bar=True)


class EpochMetricsCSV(L.Callback):
    """Writes one row per finished epoch to ``metrics.csv`` (rewritten whole, so resume is clean)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _rows(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        with self.path.open(newline="") as f:
            return list(csv.DictReader(f))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        m = dict(trainer.callback_metrics)
        # the module's own running mean: its logged value is not reduced yet when callbacks run
        if getattr(pl_module, "epoch_train_loss", None) is not None:
            m["train_loss"] = pl_module.epoch_train_loss
        row = {"epoch": str(trainer.current_epoch)}
        for key in CSV_FIELDS[1:]:
            v = m.get(key)
            row[key] = "" if v is None else f"{float(v):.6f}"
        rows = [r for r in self._rows() if r.get("epoch", "").isdigit() and int(r["epoch"]) < trainer.current_epoch]
        rows.append(row)
        with atomic.atomic_path(self.path) as tmp, tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            w.writeheader()
            w.writerows(rows)


class BestWeights(L.Callback):
    """Keeps an in-memory copy of the weights of the best validation epoch (or the last, if none).

    The copy travels in checkpoints (:meth:`state_dict`), so a resumed run still ends on the best
    epoch even when that epoch was trained before the interruption.
    """

    def __init__(self, monitor: str | None) -> None:
        self.monitor = monitor
        self.best = -math.inf
        self.state: dict[str, torch.Tensor] | None = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor) if self.monitor else None
        if value is None:
            self.state = copy.deepcopy({k: v.detach().cpu() for k, v in pl_module.state_dict().items()})
            return
        if float(value) > self.best:
            self.best = float(value)
            self.state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "state": self.state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = float(state_dict.get("best", -math.inf))
        self.state = state_dict.get("state")


def vocab_fingerprint(items: Sequence[str], hyperparameters: dict[str, Any] | None = None) -> str:
    """A short hash of the item vocabulary and the network-shaping hyperparameters.

    A checkpoint is resumed only when this matches, so one from another vocabulary or another
    architecture is never loaded into the wrong shapes. Knobs that do not change the weights'
    meaning (patience, resume, evaluation batch size) are left out.
    """
    h = hashlib.sha256()
    for sku in items:
        h.update(str(sku).encode())
        h.update(b"\0")
    if hyperparameters:
        keep = {k: v for k, v in hyperparameters.items() if k not in ("patience", "resume", "eval_batch_size")}
        h.update(json.dumps(keep, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _resumable(ckpt: Path, fingerprint: str) -> bool:
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable checkpoint means "start fresh"
        log.warning("not resuming from %s: cannot read it (%s)", ckpt, e)
        return False
    if state.get("recframe_vocab") != fingerprint:
        log.warning("not resuming from %s: it was trained on other items or hyperparameters", ckpt)
        return False
    return True


def run_fit(
    module: SequenceLightningModule,
    train_loader: Any,
    valid_loader: Any | None,
    ctx: FitContext,
    patience: int,
    resume: bool,
    fingerprint: str,
) -> dict[str, Any]:
    """Train ``module`` with a Trainer built from ``ctx.trainer``; load the best weights back.

    Returns a summary (epochs run, best validation MRR@20, checkpoint resumed from).
    """
    kwargs = dict(ctx.trainer or {})
    kwargs.pop("_target_", None)
    # torch intra-op threads for CPU training (see conf/trainer/cpu.yaml for the measurements)
    cpu_threads = kwargs.pop("cpu_threads", None)
    # reuse freed tensor memory instead of faulting it in again each step (see cpu_memory)
    cpu_keep_memory = kwargs.pop("cpu_keep_memory", True)
    if not module.automatic_optimization:
        # manual optimisation (GRU4Rec: one update per session-parallel step): clipping is the module's
        module.gradient_clip_val = kwargs.pop("gradient_clip_val", None) or None
        kwargs.pop("gradient_clip_algorithm", None)
    own_tmp = None
    if ctx.work_dir is None:
        own_tmp = tempfile.TemporaryDirectory(prefix="recframe-fit-")
        work_dir = Path(own_tmp.name)
    else:
        work_dir = Path(ctx.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    monitor = MONITOR if valid_loader is not None else None
    best = BestWeights(monitor)
    callbacks: list[L.Callback] = [EpochMetricsCSV(work_dir / "metrics.csv"), best]
    checkpointing = bool(kwargs.get("enable_checkpointing", True))
    ckpt_dir = work_dir / "checkpoints"
    ckpt_cb = None
    if checkpointing:
        ckpt_cb = L.pytorch.callbacks.ModelCheckpoint(
            dirpath=ckpt_dir,
            filename="best",
            monitor=monitor,
            mode="max",
            save_top_k=1,
            save_last=True,
        )
        callbacks.append(ckpt_cb)
    if monitor is not None and patience > 0:
        callbacks.append(L.pytorch.callbacks.EarlyStopping(monitor=monitor, mode="max", patience=patience))
    kwargs.setdefault("enable_progress_bar", bool(ctx.progress))
    kwargs.setdefault("enable_model_summary", False)
    kwargs.setdefault("num_sanity_val_steps", 0)
    kwargs.setdefault("default_root_dir", str(work_dir))
    kwargs["logger"] = ctx.logger if ctx.logger is not None else False
    kwargs["callbacks"] = list(kwargs.get("callbacks") or []) + callbacks
    if valid_loader is None:
        kwargs["limit_val_batches"] = 0
    module.recframe_vocab = fingerprint
    trainer = L.Trainer(**kwargs)
    saved_threads = torch.get_num_threads()
    on_cpu = str(kwargs.get("accelerator", "cpu")) == "cpu"
    if cpu_threads and on_cpu:
        torch.set_num_threads(int(cpu_threads))
    if cpu_keep_memory and on_cpu:
        keep_freed_memory()
    ckpt_path = None
    last = ckpt_dir / "last.ckpt"
    if resume and checkpointing and last.exists() and _resumable(last, fingerprint):
        ckpt_path = str(last)
        log.info("resuming training from %s", last)
    try:
        trainer.fit(module, train_dataloaders=train_loader, val_dataloaders=valid_loader, ckpt_path=ckpt_path)
        if best.state is not None:
            module.load_state_dict(best.state)
        elif ckpt_cb is not None and ckpt_cb.best_model_path and Path(ckpt_cb.best_model_path).exists():
            # resumed a finished run: nothing trained now, the best epoch is on disk
            state = torch.load(ckpt_cb.best_model_path, map_location="cpu", weights_only=True)
            module.load_state_dict(state["state_dict"])
    finally:
        torch.set_num_threads(saved_threads)
        if own_tmp is not None:
            own_tmp.cleanup()
    return {
        "epochs": int(trainer.current_epoch),
        "best_val_mrr@20": None if best.best == -math.inf else best.best,
        "resumed_from": ckpt_path,
    }
