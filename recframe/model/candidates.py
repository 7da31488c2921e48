"""Ranking a few candidate cells per row: what block-maxima top-k searches end with.

Why one module: the float32 top-k over score blocks (``recframe/deployer/topk.py``) and the one
through a bf16 product (``recframe/model/seq/nets/bf16_topk.py``) both narrow every row to a few
candidate cells in catalogue order, add the ragged tail's, and rank them with a stable sort, so
that equal scores come out in catalogue order.
"""

from __future__ import annotations

import numpy as np


def append_by_row(row: np.ndarray, more_row: np.ndarray, *columns: tuple[np.ndarray, np.ndarray]) -> list[np.ndarray]:
    """Cells ``(row, *columns)`` joined with ``(more_row, ...)`` and ordered by row, each row's cells
    of the first set before those of the second (a stable sort); ``columns`` are (first, second)
    pairs. Returns the rows, then each joined column."""
    rows = np.concatenate([row, more_row])
    order = np.argsort(rows, kind="stable")
    return [rows[order], *(np.concatenate(pair)[order] for pair in columns)]


def best_per_row(
    row: np.ndarray, cols: np.ndarray, values: np.ndarray, counts: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(values, cols)`` ``[n, k]`` of the ``k`` largest candidate values of each of the
    ``len(counts)`` rows, largest first, ties in the candidates' order. Cells ``(row, cols, values)``
    are ordered by row, ``counts`` their number per row, at least ``k`` each."""
    n = len(counts)
    # each row's candidates into one padded row, then a stable sort per row
    slot = np.arange(len(row)) - np.repeat(np.cumsum(counts) - counts, counts)
    padded = np.full((n, int(counts.max())), np.inf, dtype=np.float32)  # negated: the sort is ascending
    padded_cols = np.zeros(padded.shape, dtype=np.int64)
    padded[row, slot] = -values
    padded_cols[row, slot] = cols
    best = np.argsort(padded, axis=1, kind="stable")[:, :k]
    return -np.take_along_axis(padded, best, axis=1), np.take_along_axis(padded_cols, best, axis=1)
