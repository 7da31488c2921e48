"""What GRU4Rec, SASRec and LSTM share behind the ``Model`` interface: scoring, artifacts, devices.

A sequence model owns a network with two methods:

* ``sequence_states(items)`` -> ``[b, L, d]`` states for right-padded ``[b, L]`` item indices
  (``PAD`` = -1 after the end), each position seeing only itself and earlier positions;
* ``score_all(states)`` -> ``[n, n_items]`` scores for ``[n, d]`` states;
* optionally ``top_k(states, k, scratch, masked)`` -> the top ``k`` of those scores without
  computing them all in float32, or ``None`` (batch scoring on CPUs with a bf16 matrix unit).

With those, scoring every prefix of a batch of sessions is one forward pass
(:meth:`SequenceModel.score_prefixes`), and serving is the same pass read at the last position.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from recframe.interfaces import FitContext, Model
from recframe.model.seq.data import PAD, pad_sessions, prefix_batches
from recframe.model.seq.settings import TrainingSettings
from recframe.vocab import ItemVocab, encode_sessions

log = logging.getLogger("recframe")


class SequenceModel(Model):
    """Base for the neural sequence models; subclasses build ``self.net`` and train it in ``fit``.

    Constructors take flat keyword arguments (the yaml keys) and pass the training ones here as
    typed ``training_settings``; the architecture ones stay attributes of the model.
    """

    #: longest context the network reads (None: the whole session)
    max_len: int | None = None

    def __init__(self, training_settings: TrainingSettings) -> None:
        self.training_settings = training_settings
        self.vocab: ItemVocab | None = None
        self.net: nn.Module | None = None
        self.fit_summary: dict[str, Any] = {}

    # --- subclass hooks ------------------------------------------------------------------
    def hyperparameters(self) -> dict[str, Any]:
        """The constructor arguments (JSON-able), from the training settings or the model's attributes.

        The artifact rebuilds the model from them, and the resume fingerprint hashes them.
        """
        params = inspect.signature(type(self).__init__).parameters.values()
        names = [p.name for p in params if p.name != "self" and p.kind is not p.VAR_KEYWORD]
        settings = dataclasses.asdict(self.training_settings)
        if any(p.kind is p.VAR_KEYWORD for p in params):  # training keys passed through **training
            names += [n for n in settings if n not in names]
        return {n: settings[n] if n in settings else getattr(self, n) for n in names}

    def build_net(self, n_items: int) -> nn.Module:
        raise NotImplementedError

    # --- shared helpers ------------------------------------------------------------------
    @property
    def epochs_run(self) -> int | None:
        """Epochs actually trained in the last ``fit`` (early stopping may end before max_epochs)."""
        return self.fit_summary.get("epochs")

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def to(self, device: str | torch.device) -> SequenceModel:
        """Move the network (e.g. to ``cuda`` for fast batched evaluation); returns self."""
        self.net.to(device)
        return self

    def _valid_loader(self, valid: pd.DataFrame | None) -> torch.utils.data.DataLoader | None:
        """Validation sessions packed for one-pass full-ranking scoring (None without a valid split)."""
        from recframe.model.seq.training import ValidationBatches

        sessions = self._valid_sessions(valid)
        if not sessions:
            return None
        return torch.utils.data.DataLoader(
            ValidationBatches(sessions, self.training_settings.eval_batch_size, self.max_len),
            batch_size=None,
            shuffle=False,
        )

    def _train(self, module: Any, train_loader: Any, valid_loader: Any, ctx: FitContext) -> None:
        """Run the shared Lightning fit (checkpoints, early stopping, resume), then leave the net on CPU."""
        from recframe.model.seq.training import run_fit, vocab_fingerprint

        self.fit_summary = run_fit(
            module,
            train_loader,
            valid_loader,
            ctx,
            patience=self.training_settings.patience,
            resume=self.training_settings.resume,
            fingerprint=vocab_fingerprint(self.vocab.items, self.hyperparameters()),
        )
        self.net.cpu().eval()

    def _valid_sessions(self, valid: pd.DataFrame | None) -> list[np.ndarray]:
        if valid is None or valid.empty:
            return []
        return [s for s in encode_sessions(valid, self.vocab) if len(s) >= 2]

    @staticmethod
    def _ctx(ctx: FitContext | None) -> FitContext:
        return ctx if ctx is not None else FitContext()

    def _check_fitted(self) -> None:
        if self.net is None or self.vocab is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit() or load an artifact first")

    # --- Model interface -----------------------------------------------------------------
    def score_next(self, sessions: Sequence[np.ndarray], batch_size: int = 1024) -> np.ndarray:
        """Scores ``[len(sessions), n_items]``; empty sessions get training popularity."""
        return self.score_next_tensor(sessions, batch_size).cpu().numpy()

    @torch.no_grad()
    def score_next_tensor(self, sessions: Sequence[np.ndarray], batch_size: int = 1024) -> torch.Tensor:
        """:meth:`score_next` as a fresh float32 tensor on the model's device.

        The predictor ranks this tensor directly, so serving makes no numpy round trip (each copy of
        a ``[batch, n_items]`` score matrix costs as much as a third of the scoring itself).
        """
        self._check_fitted()
        if self.net.training:  # eval() walks every submodule: skip it on the serving path
            self.net.eval()
        dev = self.device
        n = len(self.vocab)
        nonempty = [i for i, s in enumerate(sessions) if len(s) > 0]
        empty = [i for i, s in enumerate(sessions) if len(s) == 0]
        if not empty and len(nonempty) <= batch_size:
            return self._score_last(sessions, dev)
        out = torch.empty((len(sessions), n), dtype=torch.float32, device=dev)
        if empty:
            pop = torch.as_tensor(self.vocab.popularity(), dtype=torch.float32, device=dev)
            out[torch.as_tensor(empty, device=dev)] = pop
        for lo in range(0, len(nonempty), batch_size):
            idx = nonempty[lo : lo + batch_size]
            out[torch.as_tensor(idx, device=dev)] = self._score_last([sessions[i] for i in idx], dev)
        return out

    def _score_last(self, sessions: Sequence[np.ndarray], dev: torch.device) -> torch.Tensor:
        return self.score_states(self.next_states(sessions))

    @torch.no_grad()
    def next_states(self, sessions: Sequence[np.ndarray]) -> torch.Tensor:
        """The network's state after each (non-empty) session's last item, ``[len(sessions), d]``.

        With :meth:`score_states` this splits :meth:`score_next` in two, so a caller can run the
        sequence part for many sessions at once and score them in smaller blocks (batch scoring).
        """
        self._check_fitted()
        if self.net.training:
            self.net.eval()
        dev = self.device
        rows = [np.asarray(s, dtype=np.int64) for s in sessions]
        fast = getattr(self.net, "last_states", None) if self.max_len is None else None
        final = fast(rows) if fast is not None else None
        if final is not None:  # the network reads the last states without padding (GRU4Rec on CPU)
            return final.to(dev)
        items = torch.from_numpy(pad_sessions(rows, self.max_len)).to(dev)
        last = (items != PAD).sum(dim=1) - 1
        states = self.net.sequence_states(items)
        return states[torch.arange(len(rows), device=dev), last]

    @torch.no_grad()
    def score_states(self, states: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Scores of every item ``[len(states), n_items]`` for states from :meth:`next_states`.

        A fresh tensor, or ``out`` (a float32 ``[len(states), n_items]`` buffer) when the network could
        write into it; use the returned tensor either way.
        """
        return self.net.score_all(states, out).float()

    @torch.no_grad()
    def top_states(
        self, states: torch.Tensor, k: int, scratch: torch.Tensor, masked: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """``(values, indices)`` ``[n, k]`` of :meth:`score_states`' scores, largest first, ties in item
        order, with the ``masked`` ``(row, item)`` cells left out; ``None`` where the network cannot
        rank without the full scores (then rank those). ``scratch``: a bf16 ``[n, n_items]`` buffer.
        """
        top = getattr(self.net, "top_k", None)
        return None if top is None else top(states, k, scratch, masked)

    @torch.no_grad()
    def score_prefixes(
        self, sessions: Sequence[np.ndarray], batch_size: int = 512
    ) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
        """One forward pass per batch of sessions scores every position (targets in session order).

        Positions past ``max_len`` (bounded-context models) get their own row holding exactly the
        last ``max_len`` items, so every prediction sees the context it would see when serving.
        """
        self._check_fitted()
        self.net.eval()
        dev = self.device
        for group in prefix_batches(sessions, batch_size):
            in_rows: list[np.ndarray] = []
            tgt_rows: list[np.ndarray] = []
            for i in group:
                s = np.asarray(sessions[i], dtype=np.int64)
                head = s if self.max_len is None else s[: self.max_len + 1]
                in_rows.append(head[:-1])
                tgt_rows.append(head[1:])
                if self.max_len is not None:
                    for j in range(self.max_len, len(s) - 1):
                        in_rows.append(s[j - self.max_len + 1 : j + 1])
                        tgt = np.full(self.max_len, PAD, dtype=np.int64)
                        tgt[-1] = s[j + 1]
                        tgt_rows.append(tgt)
            inputs = torch.from_numpy(pad_sessions(in_rows)).to(dev)
            targets = torch.from_numpy(pad_sessions(tgt_rows))
            mask = targets != PAD
            states = self.net.sequence_states(inputs)
            scores = self.net.score_all(states[mask.to(dev)])
            yield scores, targets[mask].numpy()

    def get_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        self._check_fitted()
        config = {"hyperparameters": self.hyperparameters(), "n_items": len(self.vocab), "fit": self.fit_summary}
        tensors = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        return config, tensors

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, Any], vocab: ItemVocab) -> SequenceModel:
        model = cls(**config["hyperparameters"])
        model.vocab = vocab
        model.net = model.build_net(int(config["n_items"]))
        model.net.load_state_dict({k: torch.as_tensor(v) for k, v in tensors.items()})
        model.net.eval()
        model.fit_summary = dict(config.get("fit", {}))
        return model


def item_matrix(weight: torch.Tensor) -> np.ndarray:
    """An output item table as a float32 numpy ``[n_items, d]`` array."""
    return weight.detach().float().cpu().numpy()
