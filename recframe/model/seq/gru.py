"""GRU4Rec (Hidasi et al. 2016, 2018), faithful to the official implementation, trained with Lightning.

What makes it GRU4Rec rather than "a GRU" (each item matters for accuracy, Hidasi & Czapp 2023):

* session-parallel mini-batches: ``batch_size`` lanes each play one session after another; the
  hidden state is carried from step to step (truncated back-propagation of one step) and reset to
  zero where a new session starts in a lane (:func:`~recframe.model.seq.data.session_parallel_schedule`);
* negatives: the other lanes' targets plus ``n_sample`` extra items shared by the whole mini-batch,
  drawn proportionally to ``popularity ** sample_alpha``;
* losses: ``cross-entropy`` (softmax over the sampled columns, with ``logq`` correction) or
  ``bpr-max`` (softmax-weighted BPR, score regularisation ``bpreg``, ELU final activation
  ``elu_param``);
* constrained (shared input/output) embeddings, a separate embedding, or one-hot input;
* dropout on the embedding and on hidden states, separately;
* Adagrad with momentum applied only to the item rows a step touched
  (:class:`~recframe.model.seq.optim.IndexedAdagradMomentum`).

Evaluation resets the hidden state at every session start and ranks all items
(:meth:`~recframe.model.seq.base.SequenceModel.score_prefixes`).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch

from recframe import validation as V
from recframe.interfaces import ConfigError, FitContext, RecframeError
from recframe.model.profile import DataProfile
from recframe.model.scaling import GRU_SCALED, describe, gru_defaults
from recframe.model.seq.base import SequenceModel, item_matrix
from recframe.model.seq.data import PAD, NegativeSampler, sessions_in_time_order
from recframe.model.seq.nets.gru import GRU4RecNet
from recframe.model.seq.nets.sampled_losses import bpr_max, cross_entropy_logq
from recframe.model.seq.optim import IndexedAdagradMomentum, clip_grad_norm_mixed
from recframe.model.seq.settings import GRU4RecTrainingSettings
from recframe.model.seq.sharded import ShardedScheduleChunks, ranks_agree
from recframe.model.seq.training import SequenceLightningModule
from recframe.vocab import ItemVocab

AUTO = V.AUTO
log = logging.getLogger("recframe")
#: what an ``auto`` architecture key holds until ``fit`` scales it (a net built without fitting,
#: e.g. random weights for a speed benchmark, uses these; ``hyperparameters()`` still says auto)
ARCHITECTURE_PLACEHOLDERS: dict[str, Any] = {"layers": [100], "dropout_p_embed": 0.0, "dropout_p_hidden": 0.0}


def _as_list(layers: Any) -> Any:
    """``layers`` as the yaml may give it: a list, one int, or ``auto``."""
    return layers if isinstance(layers, (int, str)) else list(layers)


def training_device(trainer: dict[str, Any] | None) -> str:
    """``cpu`` or ``cuda``: where the trainer settings will train (``auto`` picks a GPU when present)."""
    accelerator = str((trainer or {}).get("accelerator", "cpu")).lower()
    if accelerator == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cpu" if accelerator == "cpu" else "cuda"


class GRU4RecModule(SequenceLightningModule):
    """One Lightning batch = a chunk of session-parallel steps, with one optimiser update per step."""

    def __init__(self, net: GRU4RecNet, settings: GRU4RecTrainingSettings, counts: np.ndarray, seed: int) -> None:
        super().__init__()
        self.net = net
        self.settings = settings
        self.automatic_optimization = False
        self.gradient_clip_val: float | None = None
        self.register_buffer("log_counts", torch.log(torch.as_tensor(counts, dtype=torch.float32).clamp(min=1.0)))
        self._counts = counts
        self._seed = seed
        self._sampler: NegativeSampler | None = None
        self._hidden: list[torch.Tensor] | None = None
        self._loss_sum = 0.0
        self._loss_n = 0

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return IndexedAdagradMomentum(
            self.net.parameters(), lr=self.settings.learning_rate, momentum=self.settings.momentum
        )

    def on_train_epoch_start(self) -> None:
        self._hidden = self.net.init_hidden(self.settings.batch_size, self.device)
        self._loss_sum, self._loss_n = 0.0, 0
        if self._sampler is None and self.settings.n_sample > 0:
            # a resumed run continues with fresh negatives rather than replaying epoch 0's
            gen = torch.Generator().manual_seed(self._seed * 1000 + self.current_epoch)
            self._sampler = NegativeSampler(
                self._counts,
                self.settings.n_sample,
                self.settings.sample_alpha,
                self.settings.sample_cache_size,
                gen,
                self.device,
            )

    def _loss(self, scores: torch.Tensor, targets: torch.Tensor, n_pos: int) -> torch.Tensor:
        if self.settings.loss == "bpr-max":
            return bpr_max(scores, self.settings.bpreg, self.settings.elu_param)
        log_q = None
        if self.settings.logq > 0:
            # in-batch columns are drawn ~ popularity, sampled ones ~ popularity ** alpha
            lc = self.log_counts[targets]
            log_q = torch.cat([lc[:n_pos], lc[n_pos:] * self.settings.sample_alpha])
        return cross_entropy_logq(scores, log_q, self.settings.logq)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        inputs, targets, starts = batch
        opt = self.optimizers()
        hidden = self._hidden
        bs = self.settings.batch_size
        # under DDP every rank must run as many backward passes as the others (each one all-reduces
        # the gradients): a rank whose lanes have run dry makes zero-loss updates instead of stopping
        distributed = self.trainer.world_size > 1
        for t in range(inputs.shape[0]):
            active = targets[t] != PAD
            n_pos = int(active.sum())
            if n_pos == 0 or (n_pos < 2 and self.settings.n_sample == 0):
                if not distributed:
                    break
                self._idle_update(opt, inputs[t], hidden)
                continue
            reset = starts[t].unsqueeze(1)
            hidden = [h.detach().masked_fill(reset, 0.0) for h in hidden]
            pos = targets[t][active]
            cols = torch.cat([pos, self._sampler.sample()]) if self._sampler is not None else pos
            scores, hidden = self.net.step(inputs[t].clamp(min=0), hidden, cols)
            if n_pos < bs:
                scores = scores[active]
            loss = self._loss(scores, cols, n_pos) / bs
            self._update(opt, loss)
            value = float(loss.detach())
            if not np.isfinite(value):
                raise FloatingPointError(
                    f"GRU4Rec loss became {value} at epoch {self.current_epoch}: lower model.learning_rate"
                )
            self._loss_sum += value * n_pos
            self._loss_n += n_pos
        self._hidden = [h.detach() for h in hidden]

    def _update(self, opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self.gradient_clip_val:
            clip_grad_norm_mixed(list(self.net.parameters()), float(self.gradient_clip_val))
        opt.step()

    def _idle_update(self, opt: torch.optim.Optimizer, items: torch.Tensor, hidden: list[torch.Tensor]) -> None:
        """A DDP rank with no event at this step: a zero loss through every parameter.

        Its gradients are zero, so the all-reduced gradient is the other ranks' (divided by the
        world size, as DDP averages), and the update keeps this rank's weights equal to theirs.
        The negative sampler advances as on the other ranks, which keeps their negatives shared.
        """
        items = items.clamp(min=0)
        cols = torch.cat([items, self._sampler.sample()]) if self._sampler is not None else items
        scores, _ = self.net.step(items, [h.detach() for h in hidden], cols)
        self._update(opt, scores.sum() * 0.0)

    @property
    def epoch_train_loss(self) -> float | None:
        return self._loss_sum / self._loss_n if self._loss_n else None

    def on_train_end(self) -> None:
        if not ranks_agree(self.net):
            raise RecframeError(
                "GRU4Rec's DDP ranks ended with different weights (their gradients were not all-reduced "
                "at every step): train with trainer=gpu or trainer=cpu on one device"
            )

    def on_train_epoch_end(self) -> None:
        if self._loss_n:
            # the reference's epoch loss: per-step loss weighted by the step's number of events
            self.log("train_loss", self._loss_sum / self._loss_n, prog_bar=True)

    def position_scores(self, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        states = self.net.sequence_states(inputs)
        return self.net.score_all(states[mask])


class GRU4RecModel(SequenceModel):
    """GRU4Rec behind the recframe ``Model`` interface (see the module docstring for the algorithm).

    Argument names follow the official implementation, so its published parameter files translate
    one to one into ``conf/experiment/gru4rec_*.yaml``. Epochs and device come from the trainer.
    The keys of :data:`~recframe.model.scaling.GRU_SCALED` default to ``auto``: ``fit`` sets them
    from the training data and the device (:func:`~recframe.model.scaling.gru_defaults`).
    """

    name = "gru"
    training_settings: GRU4RecTrainingSettings

    def __init__(
        self,
        loss: str = AUTO,
        layers: list[int] | int | str = AUTO,
        embedding: int = 0,
        constrained_embedding: bool = True,
        dropout_p_embed: float | str = AUTO,
        dropout_p_hidden: float | str = AUTO,
        learning_rate: float | str = AUTO,
        momentum: float | str = AUTO,
        batch_size: int | str = AUTO,
        n_sample: int | str = AUTO,
        sample_alpha: float | str = AUTO,
        sample_cache_size: int = 10_000_000,
        bpreg: float | str = AUTO,
        elu_param: float | str = AUTO,
        logq: float | str = AUTO,
        patience: int = 3,
        resume: bool = True,
        steps_per_batch: int = 64,
        eval_batch_size: int = 1024,
    ) -> None:
        scaled = {
            "loss": loss,
            "learning_rate": learning_rate,
            "batch_size": batch_size,
            "momentum": momentum,
            "n_sample": n_sample,
            "sample_alpha": sample_alpha,
            "bpreg": bpreg,
            "elu_param": elu_param,
            "logq": logq,
        }
        #: keys still ``auto``: ``fit`` scales them to the data; until then the training settings hold
        #: the settings class's defaults for them (checked values, never trained with)
        self._auto = {key for key, value in {**scaled, "layers": layers, "dropout_p_embed": dropout_p_embed,
                      "dropout_p_hidden": dropout_p_hidden}.items() if value == AUTO}  # fmt: skip
        given = {key: value for key, value in scaled.items() if value != AUTO}
        try:
            settings = GRU4RecTrainingSettings(
                patience=patience,
                resume=resume,
                eval_batch_size=eval_batch_size,
                sample_cache_size=sample_cache_size,
                steps_per_batch=steps_per_batch,
                **given,
            )
        except ConfigError as e:
            if e.key.removeprefix("model.") not in scaled:
                raise
            raise ConfigError(e.key, e.value, f"{e.allowed}, or auto (scaled to the data)") from None
        super().__init__(settings)
        self.layers = V.or_auto("model.layers", _as_list(layers), V.int_list, 1)
        self.embedding = V.integer("model.embedding", embedding, 0)
        self.constrained_embedding = V.boolean("model.constrained_embedding", constrained_embedding)
        self.dropout_p_embed = V.or_auto("model.dropout_p_embed", dropout_p_embed, V.number, 0.0, 0.99)
        self.dropout_p_hidden = V.or_auto("model.dropout_p_hidden", dropout_p_hidden, V.number, 0.0, 0.99)
        for key, placeholder in ARCHITECTURE_PLACEHOLDERS.items():  # a net built without fit (benchmarks)
            if getattr(self, key) == AUTO:
                setattr(self, key, placeholder)
        #: the keys that were ``auto`` and the values ``fit`` scaled them to
        self.scaled_params: dict[str, Any] = {}

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor arguments; keys not yet scaled to data (before ``fit``) read ``auto``."""
        return {key: AUTO if key in self._auto else value for key, value in super().hyperparameters().items()}

    def resolve_auto(self, train: pd.DataFrame, device: str) -> dict[str, Any]:
        """Replace every ``auto`` key by :func:`~recframe.model.scaling.gru_defaults` for ``train``
        on ``device`` (explicit keys, the loss first, condition the rest); returns what was scaled."""
        if not self._auto:
            return {}
        profile = DataProfile.of(train)
        loss = None if "loss" in self._auto else self.training_settings.loss
        defaults = gru_defaults(profile, device, loss=loss)
        chosen = {key: defaults[key] for key in GRU_SCALED if key in self._auto}
        fields = {f.name for f in dataclasses.fields(self.training_settings)}
        self.training_settings = dataclasses.replace(
            self.training_settings, **{k: v for k, v in chosen.items() if k in fields}
        )
        for key in ("layers", "dropout_p_embed", "dropout_p_hidden"):
            if key in chosen:
                setattr(self, key, chosen[key])
        self._auto = set()
        self.scaled_params = chosen
        log.info("gru: %s scaled to the data on %s (%s)", describe(chosen), device, profile.summary())
        return chosen

    def build_net(self, n_items: int) -> GRU4RecNet:
        return GRU4RecNet(
            n_items,
            self.layers,
            embedding=self.embedding,
            constrained_embedding=self.constrained_embedding,
            dropout_p_embed=self.dropout_p_embed,
            dropout_p_hidden=self.dropout_p_hidden,
        )

    def fit(
        self, train: pd.DataFrame, valid: pd.DataFrame | None = None, ctx: FitContext | None = None
    ) -> GRU4RecModel:
        ctx = self._ctx(ctx)
        self.resolve_auto(train, training_device(ctx.trainer))
        L.seed_everything(ctx.seed, workers=True, verbose=False)
        self.vocab = ItemVocab.from_events(train)
        sessions = sessions_in_time_order(train, self.vocab)
        # split across DDP ranks by session when the trainer starts them (see recframe.model.seq.sharded)
        chunks = ShardedScheduleChunks(
            sessions, self.training_settings.batch_size, chunk=self.training_settings.steps_per_batch
        )
        train_loader = torch.utils.data.DataLoader(chunks, batch_size=None)
        valid_loader = self._valid_loader(valid)
        self.net = self.build_net(len(self.vocab))
        module = GRU4RecModule(self.net, self.training_settings, self.vocab.counts, ctx.seed)
        self._train(module, train_loader, valid_loader, ctx)
        self.fit_summary["train_steps_per_epoch"] = chunks.n_steps  # this process's share under DDP
        if self.scaled_params:
            self.fit_summary["scaled_params"] = self.scaled_params
        return self

    def item_embeddings(self) -> np.ndarray | None:
        return None if self.net is None else item_matrix(self.net.Wy.weight)
