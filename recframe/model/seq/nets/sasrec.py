"""SASRec (Kang & McAuley, 2018): a causal self-attention encoder over the items of a session.

Item embeddings are shared between input and output (scores are dot products with the item
table), positions are learned, and each block is pre-norm multi-head attention + feed-forward, so
position ``t`` attends to positions ``<= t`` only. Sessions are right-padded with a dedicated
padding row (index ``n_items``) that is never scored.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from recframe.model.seq.nets.item_scores import ItemScorer


class SASRecNet(nn.Module):
    """Embedding + positions -> ``n_layers`` causal transformer blocks -> layer norm -> item scores."""

    def __init__(
        self, n_items: int, hidden_size: int, n_layers: int, n_heads: int, dropout: float, max_len: int
    ) -> None:
        super().__init__()
        self.n_items = n_items
        self.max_len = max_len
        self.item = nn.Embedding(n_items + 1, hidden_size, padding_idx=n_items)
        self._scorer = ItemScorer()
        self.pos = nn.Embedding(max_len, hidden_size)
        self.drop = nn.Dropout(dropout)
        block = nn.TransformerEncoderLayer(
            hidden_size,
            n_heads,
            dim_feedforward=hidden_size * 4,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(block, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden_size)
        nn.init.normal_(self.item.weight, std=1.0 / math.sqrt(hidden_size))
        nn.init.normal_(self.pos.weight, std=0.02)
        with torch.no_grad():
            self.item.weight[n_items].zero_()

    def sequence_states(self, items: torch.Tensor) -> torch.Tensor:
        """``[b, L, d]`` states for right-padded ``[b, L]`` items (``PAD`` = -1), ``L <= max_len``."""
        pad = items < 0
        x = self.item(items.masked_fill(pad, self.n_items))
        positions = torch.arange(items.shape[1], device=items.device)
        x = self.drop(x * math.sqrt(x.shape[-1]) + self.pos(positions))
        causal = nn.Transformer.generate_square_subsequent_mask(items.shape[1], device=items.device, dtype=x.dtype)
        x = self.encoder(x, mask=causal, is_causal=True)
        return self.norm(x)

    def output_table(self) -> torch.Tensor:
        return self.item.weight[: self.n_items]

    def output_bias(self, items: torch.Tensor) -> torch.Tensor:
        return torch.zeros(items.shape, device=items.device)

    def score_all(self, states: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        return self._scorer(states, self.output_table(), None, out)

    def top_k(
        self, states: torch.Tensor, k: int, scratch: torch.Tensor, masked: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The top ``k`` of :meth:`score_all`'s scores without all of them, or ``None`` (see ``item_scores``)."""
        return self._scorer.top_k(states, self.output_table(), None, k, scratch, masked)
