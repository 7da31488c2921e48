"""The original case study's LSTM (embedding -> dropout -> LSTM -> softmax over the last 20 items).

Kept as the comparison point the case study started from; trained and scored like SASRec
(:mod:`recframe.model.seq.padded`), with a context of ``max_len`` items.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recframe import validation as V
from recframe.model.seq.base import item_matrix
from recframe.model.seq.nets.lstm import LSTMNet
from recframe.model.seq.padded import PaddedSequenceModel
from recframe.model.seq.settings import PaddedTrainingSettings


class LSTMModel(PaddedSequenceModel):
    """A next-item LSTM with a softmax output layer over the catalogue."""

    name = "lstm"

    def __init__(
        self,
        embedding_size: int = 64,
        hidden_size: int = 128,
        n_layers: int = 1,
        dropout: float = 0.2,
        max_len: int = 20,
        learning_rate: float = 0.002,
        **training: Any,
    ) -> None:
        # the shared training keys (batch_size, loss, n_sample, ...): PaddedTrainingSettings
        super().__init__(max_len, PaddedTrainingSettings.from_keys(learning_rate=learning_rate, **training))
        self.embedding_size = V.integer("model.embedding_size", embedding_size, 1)
        self.hidden_size = V.integer("model.hidden_size", hidden_size, 1)
        self.n_layers = V.integer("model.n_layers", n_layers, 1)
        self.dropout = V.number("model.dropout", dropout, 0.0, 0.99)

    def build_net(self, n_items: int) -> LSTMNet:
        return LSTMNet(n_items, self.embedding_size, self.hidden_size, self.n_layers, self.dropout, self.max_len)

    def item_embeddings(self) -> np.ndarray | None:
        return None if self.net is None else item_matrix(self.net.output_table())
