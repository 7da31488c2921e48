"""The original case study's model: item embedding -> dropout -> LSTM -> softmax over all items.

It reads (at most) the last ``max_len`` items of a session, as the Keras model of the
"post-modern stack" case study did with sequences padded/truncated to 20. Here the LSTM returns
a state at every position so one pass trains and scores all prefixes; the output layer is a
separate dense item table with a bias (the softmax layer), not tied to the input embedding.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from recframe.model.seq.nets.item_scores import ItemScorer


class LSTMNet(nn.Module):
    """Embedding (padding row ``n_items``) -> dropout -> LSTM -> dense softmax layer over items."""

    def __init__(
        self, n_items: int, embedding_size: int, hidden_size: int, n_layers: int, dropout: float, max_len: int
    ) -> None:
        super().__init__()
        self.n_items = n_items
        self.max_len = max_len
        self.item = nn.Embedding(n_items + 1, embedding_size, padding_idx=n_items)
        self.drop = nn.Dropout(dropout)
        self.lstm = nn.LSTM(
            embedding_size, hidden_size, num_layers=n_layers, batch_first=True, dropout=dropout if n_layers > 1 else 0.0
        )
        self.out = nn.Linear(hidden_size, n_items)
        self._scorer = ItemScorer()

    def sequence_states(self, items: torch.Tensor) -> torch.Tensor:
        """``[b, L, hidden]`` for right-padded ``[b, L]`` items; padding only follows real items."""
        x = self.drop(self.item(items.masked_fill(items < 0, self.n_items)))
        return self.lstm(x)[0]

    def output_table(self) -> torch.Tensor:
        return self.out.weight

    def output_bias(self, items: torch.Tensor) -> torch.Tensor:
        return self.out.bias[items]

    def score_all(self, states: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        return self._scorer(states, self.out.weight, self.out.bias, out)

    def top_k(
        self, states: torch.Tensor, k: int, scratch: torch.Tensor, masked: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The top ``k`` of :meth:`score_all`'s scores without all of them, or ``None`` (see ``item_scores``)."""
        return self._scorer.top_k(states, self.out.weight, self.out.bias, k, scratch, masked)
