"""The sparse machinery behind the session-kNN models (sknn, vsknn, stan, vstan).

Session-based kNN looks, for every prefix of a test session, for the training sessions that share an
item with it, keeps the ``sample_size`` most recent of them, ranks those by a similarity, keeps the
``k`` best and lets them vote for their items (Ludewig & Jannach 2018; Garg et al. 2019). Doing that
one prefix at a time with Python sets is what makes reference implementations take minutes; here a
whole batch of prefixes is handled with a few sparse products and sorts:

* training sessions are rows of a CSR matrix (session x item), numbered oldest to newest by their
  last timestamp, so "most recent" is simply "highest row number";
* one complex-valued product ``prefixes x item->sessions`` finds every candidate neighbour of every
  prefix at once. Its real part carries the similarity numerator (the sum of the prefix's item
  weights over the shared items) and its imaginary part a sum of ``4**-step`` over the shared items,
  from which the exponent gives back the smallest "step" (how many positions from the end of the
  prefix the most recent shared item sits) exactly: the score decay of V-SKNN and V-STAN needs it;
* per-row ranks over the CSR layout give the recency sample and the top-k;
* votes are summed in float64 through one more sparse product and written once into the float32
  score matrix.

Each item's session list is cut to its ``sample_size`` most recent sessions before the product. That
changes nothing (the ``sample_size`` most recent sessions of a union are among the ``sample_size``
most recent of each part) and bounds the work on popular items.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

# Steps travel through the candidate product as powers of four in float64; 4**-500 = 2**-1000 is
# still a normal number. Items further than this from the end of a prefix share the decay of step 500.
MAX_STEP = 500


# ----------------------------------------------------------------------------------------------
# A batch of prefixes in sparse form
# ----------------------------------------------------------------------------------------------


@dataclass
class PrefixBatch:
    """The distinct items of each prefix with the position of their last occurrence.

    Duplicates count for the length and positions (as in session-rec, where a repeated item takes the
    weight of its latest click), but each item appears once per row.
    """

    rows: np.ndarray  # prefix of each (prefix, item) pair
    items: np.ndarray  # item index
    last_pos: np.ndarray  # 1-based position of the item's last occurrence in the prefix
    lengths: np.ndarray  # [B] events per prefix, duplicates included
    n_distinct: np.ndarray  # [B] distinct items per prefix

    @property
    def size(self) -> int:
        return len(self.lengths)

    @property
    def steps(self) -> np.ndarray:
        """Distance of each pair from the end of its prefix: 1 for the last item."""
        return self.lengths[self.rows] - self.last_pos + 1


def encode_prefixes(sessions: Sequence[np.ndarray]) -> PrefixBatch:
    """Flatten a list of index arrays into a :class:`PrefixBatch` without a Python loop per item."""
    b = len(sessions)
    lengths = np.fromiter((len(s) for s in sessions), dtype=np.int64, count=b)
    total = int(lengths.sum())
    if total == 0:
        empty = np.zeros(0, dtype=np.int64)
        return PrefixBatch(empty, empty, empty, lengths, np.zeros(b, dtype=np.int64))
    items = np.concatenate([np.asarray(s, dtype=np.int64).ravel() for s in sessions])
    rows = np.repeat(np.arange(b, dtype=np.int64), lengths)
    starts = np.cumsum(lengths) - lengths
    pos = np.arange(total, dtype=np.int64) - starts[rows] + 1
    order = np.lexsort((pos, items, rows))
    rows, items, pos = rows[order], items[order], pos[order]
    last = np.ones(total, dtype=bool)
    last[:-1] = (rows[1:] != rows[:-1]) | (items[1:] != items[:-1])
    rows, items, pos = rows[last], items[last], pos[last]
    return PrefixBatch(rows, items, pos, lengths, np.bincount(rows, minlength=b))


# ----------------------------------------------------------------------------------------------
# Training sessions
# ----------------------------------------------------------------------------------------------


class SessionIndex:
    """Training sessions as a CSR matrix, rows ordered oldest to newest.

    ``sessions[s, i]`` holds the 1-based position of the last occurrence of item ``i`` in session
    ``s`` (STAN needs it; the other models only use the sparsity pattern). ``times[s]`` is the last
    timestamp of session ``s``, non-decreasing in ``s``.
    """

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, last_pos: np.ndarray, times: np.ndarray, n_items: int):
        n_sessions = len(indptr) - 1
        self.n_items = int(n_items)
        self.sessions = sp.csr_matrix(
            (np.asarray(last_pos, dtype=np.int32), np.asarray(indices, dtype=np.int32), np.asarray(indptr)),
            shape=(n_sessions, self.n_items),
        )
        self.times = np.asarray(times, dtype=np.float64)
        self.lengths = np.diff(self.sessions.indptr).astype(np.int64)  # distinct items per session
        self._binary: sp.csr_matrix | None = None
        self._by_item: dict[int, sp.csr_matrix] = {}

    @property
    def n_sessions(self) -> int:
        return self.sessions.shape[0]

    @classmethod
    def from_codes(
        cls, session_codes: np.ndarray, item_codes: np.ndarray, ts: np.ndarray, n_items: int
    ) -> SessionIndex:
        """Build from parallel arrays of events (any order; events of equal ``ts`` keep their order)."""
        session_codes = np.asarray(session_codes, dtype=np.int64)
        item_codes = np.asarray(item_codes, dtype=np.int64)
        ts = np.asarray(ts, dtype=np.float64)
        order = np.lexsort((ts, session_codes))
        sess, items, ts = session_codes[order], item_codes[order], ts[order]
        n = len(sess)
        first = np.ones(n, dtype=bool)
        first[1:] = sess[1:] != sess[:-1]
        starts = np.flatnonzero(first)
        pos = np.arange(n, dtype=np.int64) - np.repeat(starts, np.diff(np.append(starts, n))) + 1
        # Recency order: by last timestamp, ties by the order sessions first appear in the input.
        uniq = sess[starts]
        ends = np.append(starts[1:], n) - 1
        last_ts = ts[ends]
        recency = np.lexsort((uniq, last_ts))
        new_id = np.empty(len(uniq), dtype=np.int64)
        new_id[recency] = np.arange(len(uniq))
        row = np.repeat(new_id, np.diff(np.append(starts, n)))
        # One entry per (session, item): the last position wins.
        o = np.lexsort((pos, items, row))
        row, items, pos = row[o], items[o], pos[o]
        keep = np.ones(n, dtype=bool)
        keep[:-1] = (row[1:] != row[:-1]) | (items[1:] != items[:-1])
        row, items, pos = row[keep], items[keep], pos[keep]
        indptr = np.zeros(len(uniq) + 1, dtype=np.int64)
        np.cumsum(np.bincount(row, minlength=len(uniq)), out=indptr[1:])
        return cls(indptr, items, pos, last_ts[recency], n_items)

    def binary(self) -> sp.csr_matrix:
        """Session x item with ones: the matrix neighbours vote through (float64, so votes sum exactly)."""
        if self._binary is None:
            s = self.sessions
            self._binary = sp.csr_matrix((np.ones(s.nnz, dtype=np.float64), s.indices, s.indptr), shape=s.shape)
        return self._binary

    def item_sessions(self, cap: int) -> sp.csr_matrix:
        """Item x session with ones, each item keeping only its ``cap`` most recent sessions (0 = all)."""
        if cap not in self._by_item:
            t = self.binary().T.tocsr().astype(np.float64)
            t.sort_indices()
            if cap > 0:
                lens = np.diff(t.indptr)
                owner = np.repeat(np.arange(len(lens)), lens)
                from_end = t.indptr[owner + 1] - np.arange(t.nnz) - 1
                keep = from_end < cap
                indptr = np.zeros_like(t.indptr)
                np.cumsum(np.minimum(lens, cap), out=indptr[1:])
                t = sp.csr_matrix((t.data[keep], t.indices[keep], indptr), shape=t.shape)
            self._by_item[cap] = t
        return self._by_item[cap]

    def state(self) -> dict[str, np.ndarray]:
        s = self.sessions
        return {
            "session_indptr": s.indptr.astype(np.int64),
            "session_items": s.indices.astype(np.int64),
            "session_last_pos": s.data.astype(np.int64),
            "session_times": self.times.astype(np.float64),
        }

    @classmethod
    def from_state(cls, tensors: dict[str, object], n_items: int) -> SessionIndex:
        def arr(key: str) -> np.ndarray:
            v = tensors[key]
            return v.numpy() if hasattr(v, "numpy") else np.asarray(v)

        return cls(arr("session_indptr"), arr("session_items"), arr("session_last_pos"), arr("session_times"), n_items)


# ----------------------------------------------------------------------------------------------
# Neighbour search
# ----------------------------------------------------------------------------------------------


@dataclass
class Candidates:
    """Candidate neighbours of a batch: one entry per (prefix, training session) pair, grouped by row."""

    rows: np.ndarray
    sessions: np.ndarray
    overlap: np.ndarray  # sum of the prefix's item weights over the shared items
    step: np.ndarray  # steps from the end of the prefix to the most recent shared item (1 = last)

    def take(self, idx: np.ndarray) -> Candidates:
        return Candidates(self.rows[idx], self.sessions[idx], self.overlap[idx], self.step[idx])


def find_candidates(index: SessionIndex, batch: PrefixBatch, weights: np.ndarray, sample_size: int) -> Candidates:
    """Every training session sharing an item with each prefix, cut to the ``sample_size`` most recent.

    ``weights`` are the prefix's item weights (aligned with ``batch.rows``); they may be zero, the
    imaginary channel keeps the sparsity pattern intact.
    """
    steps = np.minimum(batch.steps, MAX_STEP)
    data = np.asarray(weights, dtype=np.float64) + 1j * np.ldexp(1.0, -2 * steps)
    q = sp.csr_matrix((data, (batch.rows, batch.items)), shape=(batch.size, index.n_items))
    p = (q @ index.item_sessions(sample_size)).tocsr()
    counts = np.diff(p.indptr)
    if sample_size > 0 and counts.max(initial=0) > sample_size:
        p.sort_indices()  # only the recency cut needs sessions in order within a row
    rows = np.repeat(np.arange(batch.size, dtype=np.int64), counts)
    sess = p.indices.astype(np.int64)
    vals = p.data
    if sample_size > 0 and counts.max(initial=0) > sample_size:
        from_end = p.indptr[rows + 1] - np.arange(p.nnz) - 1
        keep = from_end < sample_size
        rows, sess, vals = rows[keep], sess[keep], vals[keep]
    _, exp = np.frexp(vals.imag)
    step = (1 - exp.astype(np.int64)) // 2
    return Candidates(rows, sess, vals.real.copy(), step)


def tie_key(x: np.ndarray) -> np.ndarray:
    """``x`` with its mantissa rounded to 40 bits, so that mathematically equal similarities summed in
    a different order (1/3 + 2/3 against 2/3 + 1/3) tie exactly and the tie rule decides between them."""
    mantissa, exponent = np.frexp(x)
    return np.ldexp(np.round(mantissa * 2.0**40) / 2.0**40, exponent)


def top_k(cands: Candidates, sim: np.ndarray, k: int, n_rows: int, newest_first: bool) -> np.ndarray:
    """Indices of the ``k`` most similar candidates of each row (all of them where a row has <= k).

    Ties at the cut go to the newest sessions (``newest_first``) or the oldest. Rows with no more
    than ``k`` candidates skip the sort, which on real data is most of them when ``k`` is large.
    """
    counts = np.bincount(cands.rows, minlength=n_rows)
    crowded = counts[cands.rows] > k
    if not crowded.any():
        return np.arange(len(cands.rows))
    idx = np.flatnonzero(crowded)
    r, s, v = cands.rows[idx], cands.sessions[idx], tie_key(sim[idx])
    order = np.lexsort((-s if newest_first else s, -v, r))
    r_sorted = r[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = r_sorted[1:] != r_sorted[:-1]
    starts = np.flatnonzero(first)
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.append(starts, len(order))))
    chosen = idx[order[rank < k]]
    return np.sort(np.concatenate([np.flatnonzero(~crowded), chosen]))


def vote(
    index: SessionIndex, rows: np.ndarray, sessions: np.ndarray, weights: np.ndarray, n_rows: int
) -> sp.csr_matrix:
    """Sparse ``[n_rows, n_items]`` scores: each neighbour adds its weight to each of its items."""
    n = sp.csr_matrix((weights.astype(np.float64), (rows, sessions)), shape=(n_rows, index.n_sessions))
    return (n @ index.binary()).tocsr()


def densify(scores: sp.csr_matrix, column_factor: np.ndarray | None = None) -> np.ndarray:
    """Dense float32 scores from summed float64 votes, times an optional per-item factor.

    Votes are summed in float64 and rounded once, so scores equal up to summation order tie (as
    evaluation, which ranks float32, would see them anyway); going through the sparse entries avoids
    a dense float64 pass over the whole catalogue for every batch.
    """
    scores.sum_duplicates()
    out = np.zeros(scores.shape, dtype=np.float32)
    rows = np.repeat(np.arange(scores.shape[0]), np.diff(scores.indptr))
    data = scores.data if column_factor is None else scores.data * column_factor[scores.indices]
    out[rows, scores.indices] = data
    return out


def expand_neighbours(index: SessionIndex, sessions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For neighbour entries, list their items: (entry of each pair, item, last position in the neighbour)."""
    s = index.sessions
    lens = index.lengths[sessions]
    entry = np.repeat(np.arange(len(sessions), dtype=np.int64), lens)
    offsets = np.cumsum(lens) - lens
    flat = s.indptr[sessions][entry] + (np.arange(int(lens.sum()), dtype=np.int64) - offsets[entry])
    return entry, s.indices[flat].astype(np.int64), s.data[flat].astype(np.int64)
