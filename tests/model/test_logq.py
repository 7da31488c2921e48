"""GRU4Rec's logQ-corrected sampled softmax against the formula written out by hand.

For a mini-batch score matrix ``s`` of shape ``[B, B + S]`` (column ``i`` of row ``i`` is row ``i``'s
target, the other ``B - 1`` in-batch columns are the other rows' targets, the last ``S`` columns are
shared sampled negatives) and the probability ``q_j`` that column ``j``'s item was drawn, the loss
summed over rows is

    L = - sum_i [ (s_ii - w log q_i) - log sum_j exp(s_ij - w log q_j) ]

with ``w`` the ``logq`` weight. In-batch columns are drawn as targets, so ``q_j`` follows popularity
(``log q_j = log count_j``); sampled columns are drawn from ``count ** sample_alpha``
(``log q_j = sample_alpha * log count_j``). Constant normalisers cancel inside the softmax.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recframe.model.seq.gru import GRU4RecModule
from recframe.model.seq.nets.sampled_losses import cross_entropy_logq
from recframe.model.seq.settings import GRU4RecTrainingSettings


def by_hand(scores: list[list[float]], log_q: list[float], w: float) -> float:
    """The loss above with Python floats and loops, no torch."""
    total = 0.0
    for i, row in enumerate(scores):
        corrected = [s - w * lq for s, lq in zip(row, log_q, strict=True)]
        top = max(corrected)
        log_norm = top + math.log(sum(math.exp(c - top) for c in corrected))
        total -= corrected[i] - log_norm
    return total


def random_case(rows: int = 5, sampled: int = 7, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(rows, rows + sampled, generator=gen, dtype=torch.float64) * 2
    log_q = torch.log(torch.rand(rows + sampled, generator=gen, dtype=torch.float64) * 50 + 1)
    return scores, log_q


@pytest.mark.parametrize("w", [0.0, 0.5, 1.0])
def test_cross_entropy_logq_matches_the_formula(w: float) -> None:
    """Catches a flipped sign (``+ w log q``: popular items favoured twice over), a correction that
    skips the target column, and a softmax taken over the wrong axis."""
    scores, log_q = random_case()
    got = float(cross_entropy_logq(scores, log_q, w))
    want = by_hand(scores.tolist(), log_q.tolist(), w)
    assert got == pytest.approx(want, rel=1e-5)


def test_the_correction_changes_the_loss_in_the_direction_it_should() -> None:
    """With all scores equal the uncorrected loss is log(columns); the correction makes a popular
    target cost more and a rare one less (a flipped sign inverts both)."""
    scores = torch.zeros(1, 4, dtype=torch.float64)
    assert float(cross_entropy_logq(scores, None, 1.0)) == pytest.approx(math.log(4))
    popular_target = torch.log(torch.tensor([100.0, 1.0, 1.0, 1.0], dtype=torch.float64))
    popular_negative = torch.log(torch.tensor([1.0, 100.0, 1.0, 1.0], dtype=torch.float64))
    assert float(cross_entropy_logq(scores, popular_target, 1.0)) == pytest.approx(math.log(100 * 3.01))
    assert float(cross_entropy_logq(scores, popular_negative, 1.0)) == pytest.approx(math.log(3.01))


def module(counts: np.ndarray, logq: float, alpha: float) -> GRU4RecModule:
    settings = GRU4RecTrainingSettings(loss="cross-entropy", logq=logq, sample_alpha=alpha, bpreg=0.0, elu_param=0.0)
    return GRU4RecModule(torch.nn.Identity(), settings, counts, seed=0)


@pytest.mark.parametrize(("logq", "alpha"), [(1.0, 0.5), (0.7, 0.0), (1.0, 1.0)])
def test_module_loss_uses_popularity_for_in_batch_and_alpha_for_sampled_columns(logq: float, alpha: float) -> None:
    """The q of each column as GRU4Rec draws it. Catches sample_alpha applied to the in-batch columns
    too (or to none), counts not looked up by the column's item, and zero counts giving log 0."""
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 400, size=30).astype(np.float64)
    counts[4] = 0  # an item never seen in training still gets a finite log q (count clamped to 1)
    n_pos, n_sampled = 4, 6
    cols = torch.as_tensor([4, 17, 2, 9, 17, 0, 21, 4, 11, 29])  # targets, then sampled items
    assert len(cols) == n_pos + n_sampled
    scores = torch.as_tensor(rng.normal(size=(n_pos, len(cols))), dtype=torch.float32)
    got = float(module(counts, logq, alpha)._loss(scores, cols, n_pos))
    log_count = [math.log(max(counts[c], 1.0)) for c in cols.tolist()]
    log_q = log_count[:n_pos] + [alpha * lc for lc in log_count[n_pos:]]
    want = by_hand(scores.double().tolist(), log_q, logq)
    assert got == pytest.approx(want, rel=1e-5)
