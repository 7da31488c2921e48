"""A small, untrained GRU session model for serving tests and the serving benchmark.

Serving does not care whether weights are good, only that scoring costs what a real sequence model
costs (a GRU over the session, a dot product with every item embedding) and that scores depend on
the session. This model gives exactly that without a training run, so tests and
``benchmarks/serving.py`` can build a 43k-item artifact in a second. It is a regular
:class:`~recframe.interfaces.Model`: saved and loaded through :mod:`recframe.artifact` like any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from recframe.interfaces import FitContext, Model
from recframe.vocab import ItemVocab


class ProbeGRUModel(Model):
    """Item embeddings -> GRU -> last hidden state scored against every item embedding."""

    name = "probe_gru"

    def __init__(self, dim: int = 64, seed: int = 0) -> None:
        self.dim = int(dim)
        self.seed = int(seed)
        self.vocab: ItemVocab | None = None
        self.net: Any = None

    def _build(self, n_items: int) -> None:
        import torch

        torch.manual_seed(self.seed)
        self.net = torch.nn.ModuleDict(
            {
                "emb": torch.nn.Embedding(n_items + 1, self.dim, padding_idx=n_items),
                "gru": torch.nn.GRU(self.dim, self.dim, batch_first=True),
            }
        ).eval()

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None, ctx: FitContext | None = None) -> Model:
        self.vocab = ItemVocab.from_events(train)
        self._build(len(self.vocab))
        return self

    @classmethod
    def with_vocab(cls, vocab: ItemVocab, dim: int = 64, seed: int = 0) -> ProbeGRUModel:
        """A model over a given vocabulary (e.g. 43k synthetic SKUs for the benchmark)."""
        m = cls(dim, seed)
        m.vocab = vocab
        m._build(len(vocab))
        return m

    def score_next(self, sessions: Sequence[np.ndarray]) -> np.ndarray:
        import torch

        n = len(self.vocab)
        lengths = [len(s) for s in sessions]
        width = max(1, max(lengths, default=1))
        padded = np.full((len(sessions), width), n, dtype=np.int64)
        for row, s in enumerate(sessions):
            padded[row, : len(s)] = s
        with torch.inference_mode():
            x = self.net["emb"](torch.from_numpy(padded))
            out, _ = self.net["gru"](x)
            last = torch.as_tensor([max(0, length - 1) for length in lengths])
            h = out[torch.arange(len(sessions)), last]
            return h @ self.net["emb"].weight[:n].T

    def item_embeddings(self) -> np.ndarray | None:
        return self.net["emb"].weight[: len(self.vocab)].detach().numpy()

    def get_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {"dim": self.dim, "seed": self.seed}, dict(self.net.state_dict())

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, Any], vocab: ItemVocab) -> ProbeGRUModel:
        m = cls(config.get("dim", 64), config.get("seed", 0))
        m.vocab = vocab
        m._build(len(vocab))
        m.net.load_state_dict(tensors)
        return m
