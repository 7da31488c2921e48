"""Row-wise top-k over a large catalogue, faster than one ``torch.topk`` pass on CPU.

Why: serving ranks tens of thousands of items per session, and on CPU ``torch.topk`` over 43k
columns cost about as much as the matrix product that produced the scores. Splitting each row into
blocks, picking the ``k`` blocks with the largest maxima, and ranking only what those blocks hold
gives the same top-k values: the ``k``-th largest picked maximum (the threshold) is at most the
row's ``k``-th largest score, since the ``k`` picked maxima are ``k`` scores at least that large,
and a block left out has no score above it. So every score above the threshold sits in a picked
block, and the picked blocks hold at least ``k`` scores at or above it.

Only the scores at or above the threshold are ranked (a few more than ``k`` per row), with a stable
sort, so equal scores come out in catalogue order.
"""

from __future__ import annotations

import numpy as np
import torch

from recframe.model.candidates import append_by_row, best_per_row

BLOCK = 64


def topk_rows(scores: torch.Tensor, k: int, block: int = BLOCK) -> tuple[torch.Tensor, torch.Tensor]:
    """``(values, indices)`` of the ``k`` largest scores of each row, largest first.

    Equal to ``torch.topk(scores, k, dim=1)`` up to the order of tied values. Small catalogues,
    ``k`` so large that the picked blocks would cover much of the row, other devices, and rows
    holding NaN (no threshold) use ``torch.topk`` itself.
    """
    n, m = scores.shape
    n_blocks = m // block
    if scores.device.type != "cpu" or n_blocks <= k or 4 * k * block > m:
        return torch.topk(scores, k, dim=1)
    cut = n_blocks * block
    head = scores[:, :cut].reshape(n, n_blocks, block)
    maxima = head.amax(dim=2).detach().numpy()
    # which blocks, not in what order: a partial partition of the block maxima (numpy's introselect)
    picked = np.argpartition(maxima, n_blocks - k, axis=1)[:, n_blocks - k :]
    threshold = np.take_along_axis(maxima, picked, axis=1).min(axis=1)
    picked.sort(axis=1)  # catalogue order
    cand = head.detach().numpy()[np.arange(n)[:, None], picked]  # [n, k, block]
    # flat positions: numpy's nonzero over a 3-d mask costs several times its flat twin
    at = np.flatnonzero(cand >= threshold[:, None, None])
    row, within = np.divmod(at, k * block)
    blk, off = np.divmod(within, block)
    vals, cols = cand.reshape(-1)[at], picked[row, blk] * block + off
    if cut < m:  # the ragged tail: its scores at or above the threshold join the candidates
        tail = scores[:, cut:].detach().numpy()
        t_row, t_off = np.divmod(np.flatnonzero(tail >= threshold[:, None]), m - cut)
        if len(t_row):
            row, vals, cols = append_by_row(row, t_row, (vals, tail[t_row, t_off]), (cols, cut + t_off))
    counts = np.bincount(row, minlength=n)
    if counts.min() < k:  # a NaN maximum gives a NaN threshold, which no score passes
        return torch.topk(scores, k, dim=1)
    values, indices = best_per_row(row, cols, vals, counts, k)
    return torch.from_numpy(values), torch.from_numpy(indices)
