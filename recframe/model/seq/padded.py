"""Training for models that read whole (windowed) sessions at once: SASRec and the LSTM.

Unlike GRU4Rec's session-parallel stream, these models see a batch of right-padded sessions and
predict the next item at every position in one forward pass. Sessions longer than ``max_len + 1``
are cut into consecutive windows (overlapping by one item) so every transition is trained on.
Batches are bucketed by length (sorted within large random chunks), which on short-session data
such as Diginetica cuts the padding, and so the compute, several-fold without changing what is
learned.

Two losses:

* ``full``: softmax cross-entropy over the whole catalogue (exact; fine on a GPU or for a few
  thousand items);
* ``sampled``: the target against ``n_sample`` shared negatives drawn ~ ``popularity ** alpha``,
  with logQ correction and accidental hits masked. On CPU with tens of thousands of items the full
  softmax is the bottleneck (about 600 events/s on 2 cores for 43k items), hence ``auto``: full up
  to ``full_softmax_max_items`` items or on a GPU, sampled beyond.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from recframe import validation as V
from recframe.interfaces import FitContext
from recframe.model.seq.base import SequenceModel
from recframe.model.seq.data import PAD, NegativeSampler, sessions_in_time_order
from recframe.model.seq.settings import PaddedTrainingSettings
from recframe.model.seq.training import (
    SequenceLightningModule,
    padded_inputs_targets,
)
from recframe.vocab import ItemVocab


def session_windows(sessions: Sequence[np.ndarray], max_len: int) -> list[np.ndarray]:
    """Sessions of >= 2 items, longer ones cut into windows of ``max_len + 1`` items (1 overlap)."""
    out = []
    for s in sessions:
        if len(s) < 2:
            continue
        for start in range(0, len(s) - 1, max_len):
            out.append(s[start : start + max_len + 1])
    return out


class BucketBatches(torch.utils.data.Sampler):
    """Random batches of similar-length windows, re-drawn every epoch from a seeded generator."""

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int, chunk_batches: int = 64) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.chunk = batch_size * chunk_batches
        self.epoch = 0

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng((self.seed, self.epoch))
        self.epoch += 1
        perm = rng.permutation(len(self.lengths))
        batches = []
        for lo in range(0, len(perm), self.chunk):
            part = perm[lo : lo + self.chunk]
            part = part[np.argsort(self.lengths[part], kind="stable")]
            batches.extend(part[i : i + self.batch_size].tolist() for i in range(0, len(part), self.batch_size))
        for i in rng.permutation(len(batches)):
            yield batches[i]


class WindowData(torch.utils.data.Dataset):
    def __init__(self, windows: list[np.ndarray]) -> None:
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.windows[i]


def collate_windows(windows: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    return padded_inputs_targets(windows)


class PaddedSequenceModule(SequenceLightningModule):
    """Next-item loss at every position of a padded batch; Adam; standard Lightning optimisation."""

    def __init__(
        self, net: torch.nn.Module, settings: PaddedTrainingSettings, counts: np.ndarray, full: bool, seed: int
    ) -> None:
        super().__init__()
        self.net = net
        self.settings = settings
        self.full = full
        self.register_buffer("log_counts", torch.log(torch.as_tensor(counts, dtype=torch.float32).clamp(min=1.0)))
        self._counts = counts
        self._seed = seed
        self._sampler: NegativeSampler | None = None
        self._loss_sum = 0.0
        self._loss_n = 0

    @property
    def epoch_train_loss(self) -> float | None:
        return self._loss_sum / self._loss_n if self._loss_n else None

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            self.net.parameters(), lr=self.settings.learning_rate, weight_decay=self.settings.weight_decay
        )

    def on_train_epoch_start(self) -> None:
        self._loss_sum, self._loss_n = 0.0, 0
        if not self.full and self._sampler is None:
            gen = torch.Generator().manual_seed(self._seed * 1000 + self.current_epoch)
            self._sampler = NegativeSampler(
                self._counts, self.settings.n_sample, self.settings.sample_alpha, 10_000_000, gen, self.device
            )

    def _sampled_loss(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        neg = self._sampler.sample()
        table = self.net.output_table()
        pos = (h * table[targets]).sum(-1, keepdim=True) + self.net.output_bias(targets).unsqueeze(1)
        negs = h @ table[neg].T + self.net.output_bias(neg).unsqueeze(0)
        if self.settings.logq > 0:
            negs = negs - self.settings.logq * self.settings.sample_alpha * self.log_counts[neg].unsqueeze(0)
        negs = negs.masked_fill(targets.unsqueeze(1) == neg.unsqueeze(0), float("-inf"))
        logits = torch.cat([pos, negs], dim=1).float()
        return F.cross_entropy(logits, torch.zeros(len(targets), dtype=torch.long, device=h.device))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        mask = targets != PAD
        states = self.net.sequence_states(inputs)
        h, t = states[mask], targets[mask]
        loss = F.cross_entropy(self.net.score_all(h).float(), t) if self.full else self._sampled_loss(h, t)
        n = int(t.numel())
        self._loss_sum += float(loss.detach()) * n
        self._loss_n += n
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=n)
        return loss

    def position_scores(self, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.net.score_all(self.net.sequence_states(inputs)[mask])


class PaddedSequenceModel(SequenceModel):
    """Shared constructor checks and ``fit`` for SASRec and the LSTM."""

    training_settings: PaddedTrainingSettings

    def __init__(self, max_len: int, training_settings: PaddedTrainingSettings) -> None:
        super().__init__(training_settings)
        self.max_len = V.integer("model.max_len", max_len, 1)

    def _use_full_softmax(self, n_items: int, trainer: dict[str, Any]) -> bool:
        loss = self.training_settings.loss
        if loss != "auto":
            return loss == "full"
        on_gpu = str(trainer.get("accelerator", "cpu")) in ("gpu", "cuda", "mps") or (
            str(trainer.get("accelerator")) == "auto" and torch.cuda.is_available()
        )
        return on_gpu or n_items <= self.training_settings.full_softmax_max_items

    def fit(
        self, train: pd.DataFrame, valid: pd.DataFrame | None = None, ctx: FitContext | None = None
    ) -> PaddedSequenceModel:
        ctx = self._ctx(ctx)
        L.seed_everything(ctx.seed, workers=True, verbose=False)
        self.vocab = ItemVocab.from_events(train)
        windows = session_windows(sessions_in_time_order(train, self.vocab), self.max_len)
        lengths = np.fromiter((len(w) for w in windows), dtype=np.int64, count=len(windows))
        train_loader = torch.utils.data.DataLoader(
            WindowData(windows),
            batch_sampler=BucketBatches(lengths, self.training_settings.batch_size, ctx.seed),
            collate_fn=collate_windows,
        )
        valid_loader = self._valid_loader(valid)
        self.net = self.build_net(len(self.vocab))
        full = self._use_full_softmax(len(self.vocab), ctx.trainer or {})
        module = PaddedSequenceModule(self.net, self.training_settings, self.vocab.counts, full, ctx.seed)
        self._train(module, train_loader, valid_loader, ctx)
        self.fit_summary["softmax"] = "full" if full else "sampled"
        return self
