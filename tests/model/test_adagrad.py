"""GRU4Rec's Adagrad with momentum against a reference update written out element by element.

The update, per parameter element that received a gradient ``g`` this step:

    acc <- acc + g^2
    v   <- momentum * v - lr * g / sqrt(acc + eps)
    p   <- p + v

Dense parameters apply it to every element. Sparse (embedding) gradients apply it only to the rows
the step touched, after summing a row's duplicate contributions; an untouched row keeps its value,
its accumulator and its velocity (it does not keep drifting on old momentum).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recframe.model.seq.optim import IndexedAdagradMomentum


class Reference:
    """The update above on plain Python lists, one element at a time."""

    def __init__(self, values: np.ndarray, lr: float, momentum: float, eps: float) -> None:
        self.p = values.astype(float).tolist()
        self.acc = [[0.0] * len(row) for row in self.p]
        self.v = [[0.0] * len(row) for row in self.p]
        self.lr, self.momentum, self.eps = lr, momentum, eps

    def step(self, grads: dict[int, list[float]]) -> None:
        """``grads``: row -> that row's summed gradient; rows not named are untouched."""
        for r, g_row in grads.items():
            for c, g in enumerate(g_row):
                self.acc[r][c] += g * g
                self.v[r][c] = self.momentum * self.v[r][c] - self.lr * g / math.sqrt(self.acc[r][c] + self.eps)
                self.p[r][c] += self.v[r][c]


# eps is large on purpose: with a tiny eps, sqrt(acc + eps) and sqrt(acc) + eps look alike
SETTINGS = [(0.1, 0.0, 0.5), (0.05, 0.9, 0.25), (0.2, 0.5, 1e-6)]


@pytest.mark.parametrize(("lr", "momentum", "eps"), SETTINGS)
def test_dense_update_matches_the_reference(lr: float, momentum: float, eps: float) -> None:
    """Catches eps outside the square root, the momentum added with the wrong sign or without the
    learning rate, and an accumulator reset between steps."""
    rng = np.random.default_rng(0)
    start = rng.normal(size=(3, 4))
    p = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64))
    opt = IndexedAdagradMomentum([p], lr=lr, momentum=momentum, eps=eps)
    ref = Reference(start, lr, momentum, eps)
    for _ in range(5):
        g = rng.normal(size=start.shape) * rng.choice([0.05, 1.0, 3.0])
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        ref.step({r: g[r].tolist() for r in range(len(g))})
        np.testing.assert_allclose(p.detach().numpy(), np.array(ref.p), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("lr", "momentum", "eps"), SETTINGS)
def test_sparse_update_touches_only_its_rows_and_sums_duplicates_first(lr: float, momentum: float, eps: float) -> None:
    """An embedding looked up with repeated indices, as a session-parallel batch does. Catches a
    velocity that keeps moving untouched rows (a dense momentum pass over the whole table), duplicate
    rows accumulated one by one (g1^2 + g2^2 instead of (g1 + g2)^2), and updates written to the
    wrong rows."""
    rng = np.random.default_rng(1)
    start = rng.normal(size=(8, 3))
    emb = torch.nn.Embedding(8, 3, sparse=True, dtype=torch.float64)
    with torch.no_grad():
        emb.weight.copy_(torch.tensor(start))
    opt = IndexedAdagradMomentum(emb.parameters(), lr=lr, momentum=momentum, eps=eps)
    ref = Reference(start, lr, momentum, eps)
    batches = [[1, 5, 5, 2], [5, 6, 1, 1], [0, 7, 7, 7], [3, 3, 2, 6]]  # rows 4 never, others come and go
    for lookups in batches:
        target = torch.tensor(rng.normal(size=(len(lookups), 3)))
        opt.zero_grad()
        loss = ((emb(torch.tensor(lookups)) - target) ** 2).sum()
        loss.backward()
        assert emb.weight.grad.is_sparse
        # the reference's gradient: each lookup's own contribution, summed per row by hand
        with torch.no_grad():
            out = emb.weight[torch.tensor(lookups)]
        per_lookup = (2 * (out - target)).tolist()
        summed: dict[int, list[float]] = {}
        for row, g in zip(lookups, per_lookup, strict=True):
            summed[row] = [a + b for a, b in zip(summed.get(row, [0.0] * 3), g, strict=True)]
        opt.step()
        ref.step(summed)
        np.testing.assert_allclose(emb.weight.detach().numpy(), np.array(ref.p), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(emb.weight.detach().numpy()[4], start[4])  # never looked up, never moved
