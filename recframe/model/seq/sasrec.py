"""SASRec behind the recframe ``Model`` interface: a causal transformer over session items.

Training predicts the next item at every position of padded session windows (full softmax, or
sampled softmax with logQ on large catalogues on CPU; see :mod:`recframe.model.seq.padded`);
serving reads the state at a session's last position.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recframe import validation as V
from recframe.interfaces import ConfigError
from recframe.model.seq.base import item_matrix
from recframe.model.seq.nets.sasrec import SASRecNet
from recframe.model.seq.padded import PaddedSequenceModel
from recframe.model.seq.settings import PaddedTrainingSettings


class SASRecModel(PaddedSequenceModel):
    """Self-attentive sequential recommendation (Kang & McAuley, 2018) for sessions."""

    name = "sasrec"

    def __init__(
        self,
        hidden_size: int = 64,
        n_layers: int = 2,
        n_heads: int = 2,
        dropout: float = 0.2,
        max_len: int = 50,
        learning_rate: float = 0.001,
        **training: Any,
    ) -> None:
        # the shared training keys (batch_size, loss, n_sample, ...): PaddedTrainingSettings
        super().__init__(max_len, PaddedTrainingSettings.from_keys(learning_rate=learning_rate, **training))
        self.hidden_size = V.integer("model.hidden_size", hidden_size, 1)
        self.n_layers = V.integer("model.n_layers", n_layers, 1)
        self.n_heads = V.integer("model.n_heads", n_heads, 1)
        if self.hidden_size % self.n_heads:
            raise ConfigError("model.n_heads", n_heads, f"must divide model.hidden_size={hidden_size}")
        self.dropout = V.number("model.dropout", dropout, 0.0, 0.99)

    def build_net(self, n_items: int) -> SASRecNet:
        return SASRecNet(n_items, self.hidden_size, self.n_layers, self.n_heads, self.dropout, self.max_len)

    def item_embeddings(self) -> np.ndarray | None:
        return None if self.net is None else item_matrix(self.net.output_table())
