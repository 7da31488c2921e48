"""The GRU4Rec network: item input -> stacked GRU layers -> scores against output item vectors.

Three input modes, as in Hidasi et al.:

* ``constrained_embedding=True``: the input embedding *is* the output item matrix ``Wy`` (shared
  weights; the best published setting on every data set), so the input width is the last layer's.
* ``embedding=d``: a separate ``d``-dimensional input embedding.
* neither: one-hot input, i.e. the first GRU layer's input weights are a per-item lookup of its
  three gate pre-activations (:class:`OneHotGRULayer`).

Item tables are ``sparse=True`` embeddings so a training step produces gradients only for the items
it touched (the targets of the mini-batch plus the shared negatives), which the indexed optimiser in
:mod:`recframe.model.seq.optim` exploits. Scoring a subset of items (training) and all items
(evaluation) use the same weights, so ``item_embeddings()`` is simply ``Wy``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from recframe.model.seq.nets.item_scores import ItemScorer


def glorot_uniform_(tensor: torch.Tensor, fan_in: int, fan_out: int) -> torch.Tensor:
    """Uniform(-s, s) with ``s = sqrt(6 / (fan_in + fan_out))``: the reference's initialisation."""
    bound = math.sqrt(6.0 / float(fan_in + fan_out))
    with torch.no_grad():
        return tensor.uniform_(-bound, bound)


def _init_gate_blocks_(weight: torch.Tensor, fan_in: int, hidden: int) -> None:
    """Initialise a ``[3*hidden, fan_in]`` GRU weight per gate block, as three separate matrices."""
    for block in weight.view(3, hidden, -1):
        glorot_uniform_(block, fan_in, hidden)


class _GatherRows(torch.autograd.Function):
    """``weight[rows]`` for sorted unique ``rows`` with an already-coalesced sparse gradient.

    ``nn.Embedding(sparse=True)`` returns an uncoalesced gradient with one entry per lookup, which
    the optimiser must sort and sum first; gathering each distinct row once and expanding with
    ``inverse`` afterwards (a cheap dense index) makes that sort unnecessary.
    """

    @staticmethod
    def forward(ctx, weight: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(rows)
        ctx.shape = weight.shape
        return weight.index_select(0, rows)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (rows,) = ctx.saved_tensors
        sparse = torch.sparse_coo_tensor(rows.unsqueeze(0), grad, ctx.shape, is_coalesced=True, check_invariants=False)
        return sparse, None


def lookup_unique(weight: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Rows of ``weight`` for ``items`` (duplicates allowed) with a coalesced sparse gradient.

    The expansion is ``index_select``, not ``rows[inverse]``: on CPU advanced indexing and its
    backward (a zero-filled scatter) cost several times as much for the same gather (training
    speed: docs/benchmarks.md).
    """
    rows, inverse = torch.unique(items, return_inverse=True)
    return _GatherRows.apply(weight, rows).index_select(0, inverse)


class MaskDropout(nn.Module):
    """Inverted dropout (keep with probability ``1 - p``, scale by ``1 / (1 - p)``), as ``nn.Dropout``.

    The mask comes from one uniform draw compared with ``p``: on CPU ``nn.Dropout``'s per-element
    Bernoulli sampler costs about twice as much, and GRU4Rec applies dropout twice per
    session-parallel step. The draw is float32 whatever the input's dtype
    (a bf16 uniform would bias the keep rate).
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        # the scaled mask in place: one temporary besides the output, not two (twice per step)
        mask = (torch.rand(x.shape, device=x.device) >= self.p).to(x.dtype).mul_(1.0 / (1.0 - self.p))
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


def gru_update(gx: torch.Tensor, h: torch.Tensor, gh: torch.Tensor) -> torch.Tensor:
    """One GRU update from input and hidden gate pre-activations (PyTorch's gate order r, z, n)."""
    xr, xz, xn = gx.chunk(3, dim=-1)
    hr, hz, hn = gh.chunk(3, dim=-1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return n + z * (h - n)


class OneHotGRULayer(nn.Module):
    """A GRU layer whose input is an item index: the input weights are a sparse per-item lookup."""

    def __init__(self, n_items: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.wx = nn.Embedding(n_items, 3 * hidden, sparse=True)
        self.bx = nn.Parameter(torch.zeros(3 * hidden))
        self.wh = nn.Linear(hidden, 3 * hidden)
        for block in self.wx.weight.view(-1, 3, hidden).unbind(1):
            glorot_uniform_(block, n_items, hidden)
        _init_gate_blocks_(self.wh.weight, hidden, hidden)
        nn.init.zeros_(self.wh.bias)

    def step(self, items: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return gru_update(self.wx(items) + self.bx, h, self.wh(h))

    def sequence(self, items: torch.Tensor) -> torch.Tensor:
        """All hidden states ``[b, L, hidden]`` for ``[b, L]`` items, from a zero state."""
        gx = self.wx(items) + self.bx
        h = gx.new_zeros(items.shape[0], self.hidden)
        out = []
        for t in range(items.shape[1]):
            h = gru_update(gx[:, t], h, self.wh(h))
            out.append(h)
        return torch.stack(out, dim=1)


class GRU4RecNet(nn.Module):
    """Embedding (or not) -> dropout -> GRU layers (with dropout) -> dot product with item vectors.

    Training works one step at a time on a session-parallel mini-batch (:meth:`step`, hidden states
    carried by the caller and reset at session boundaries); evaluation runs whole sessions from a
    zero state (:meth:`sequence_states`) and scores every item (:meth:`score_all`).
    """

    def __init__(
        self,
        n_items: int,
        layers: list[int],
        embedding: int = 0,
        constrained_embedding: bool = True,
        dropout_p_embed: float = 0.0,
        dropout_p_hidden: float = 0.0,
    ) -> None:
        super().__init__()
        self.n_items = n_items
        self.layers = list(layers)
        self.constrained = bool(constrained_embedding)
        self.embedding_dim = 0 if self.constrained else int(embedding)
        self.drop_embed = MaskDropout(dropout_p_embed)
        self.drop_hidden = MaskDropout(dropout_p_hidden)
        self.Wy = nn.Embedding(n_items, self.layers[-1], sparse=True)
        self.By = nn.Embedding(n_items, 1, sparse=True)
        self._scorer = ItemScorer()
        glorot_uniform_(self.Wy.weight, n_items, self.layers[-1])
        nn.init.zeros_(self.By.weight)
        self.E: nn.Embedding | None = None
        self.onehot: OneHotGRULayer | None = None
        grus = []
        if self.constrained:
            n_in = self.layers[-1]
        elif self.embedding_dim > 0:
            self.E = nn.Embedding(n_items, self.embedding_dim, sparse=True)
            glorot_uniform_(self.E.weight, n_items, self.embedding_dim)
            n_in = self.embedding_dim
        else:
            self.onehot = OneHotGRULayer(n_items, self.layers[0])
            n_in = self.layers[0]
        first = 1 if self.onehot is not None else 0
        for width in self.layers[first:]:
            gru = nn.GRU(n_in, width, batch_first=True)
            _init_gate_blocks_(gru.weight_ih_l0, n_in, width)
            _init_gate_blocks_(gru.weight_hh_l0, width, width)
            nn.init.zeros_(gru.bias_ih_l0)
            nn.init.zeros_(gru.bias_hh_l0)
            grus.append(gru)
            n_in = width
        self.grus = nn.ModuleList(grus)

    def init_hidden(self, batch: int, device: torch.device | str) -> list[torch.Tensor]:
        return [torch.zeros(batch, w, device=device) for w in self.layers]

    def _embed(self, items: torch.Tensor) -> torch.Tensor:
        if self.constrained:
            return self.Wy(items)
        return self.E(items)

    def step(
        self, items: torch.Tensor, hidden: list[torch.Tensor], targets: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One session-parallel step: scores ``[B, len(targets)]`` and the new hidden states.

        ``targets`` are the items to score (the mini-batch's next items, then the shared negatives).
        Dropout is active in training mode only; the dropped-out hidden state is what the next step
        receives, as in the reference (with one-hot input the first layer's output takes the
        embedding dropout, since that layer is the embedding).
        """
        new_hidden = []
        if self.constrained:
            # one lookup for input and output rows: one coalesced sparse gradient for the shared table
            both = lookup_unique(self.Wy.weight, torch.cat([items, targets]))
            x, out_rows = both[: len(items)], both[len(items) :]
        else:
            out_rows = lookup_unique(self.Wy.weight, targets)
            x = None if self.onehot is not None else lookup_unique(self.E.weight, items)
        if self.onehot is not None:
            x = self.drop_embed(self.onehot.step(items, hidden[0]))
            new_hidden.append(x)
        else:
            x = self.drop_embed(x)
        for gru, h in zip(self.grus, hidden[len(new_hidden) :], strict=True):
            x = gru(x.unsqueeze(1), h.unsqueeze(0))[1][0]
            x = self.drop_hidden(x)
            new_hidden.append(x)
        scores = x @ out_rows.T + lookup_unique(self.By.weight, targets).T
        return scores, new_hidden

    def sequence_states(self, items: torch.Tensor) -> torch.Tensor:
        """Final-layer states ``[b, L, d]`` for right-padded ``[b, L]`` items (pad with any index).

        Each row starts from a zero state (hidden reset at the session boundary); the state at
        position t depends only on items up to t, so padding after a session cannot leak into it.
        """
        items = items.clamp(min=0)  # PAD (-1) -> any valid index: only later positions see it
        x = self.onehot.sequence(items) if self.onehot is not None else self._embed(items)
        x = self.drop_embed(x)
        for gru in self.grus:
            x = gru(x)[0]
            x = self.drop_hidden(x)
        return x

    def last_states(self, sessions: Sequence[np.ndarray]) -> torch.Tensor | None:
        """The state after each non-empty session's last item, or None where only ``sequence_states`` applies.

        On CPU inference this runs the packed numpy recurrence of
        :mod:`~recframe.model.seq.nets.gru_last_state` (what serving and batch scoring read).
        """
        from recframe.model.seq.nets import gru_last_state

        return gru_last_state.last_states(self, sessions) if gru_last_state.eligible(self) else None

    def score_all(self, states: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Scores of every item ``[n, n_items]`` for ``[n, d]`` states, bias included (see ``item_scores``)."""
        return self._scorer(states, self.Wy.weight, self.By.weight.reshape(-1), out)

    def top_k(
        self, states: torch.Tensor, k: int, scratch: torch.Tensor, masked: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The top ``k`` of :meth:`score_all`'s scores without all of them, or ``None`` (see ``item_scores``)."""
        return self._scorer.top_k(states, self.Wy.weight, self.By.weight.reshape(-1), k, scratch, masked)
