"""Data plumbing shared by the sequence models (GRU4Rec, SASRec, LSTM).

Three jobs, each vectorised with numpy so that data preparation never dominates an epoch:

* :func:`session_parallel_schedule` lays sessions out the way GRU4Rec trains on them: ``B`` lanes,
  each working through one session after another, so one training step advances every lane by one
  event. Preparing the whole epoch as ``[n_steps, B]`` index arrays up front replaces the reference
  implementation's Python bookkeeping per mini-batch with a single table lookup per step.
* :func:`pad_sessions` / :func:`prefix_batches` pack whole sessions into right-padded matrices, the
  input of one forward pass that scores every position (evaluation, SASRec/LSTM training).
* :class:`NegativeSampler` draws the popularity-weighted shared negatives from a pre-generated cache.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from recframe.events import session_codes
from recframe.vocab import ItemVocab

PAD = -1  # marks an empty slot in index matrices; never a vocabulary index


def sessions_in_time_order(events: pd.DataFrame, vocab: ItemVocab) -> list[np.ndarray]:
    """Encode ``events`` into index arrays, ordered by session start time (ties by session id).

    GRU4Rec feeds sessions in the order they started, so a lane's next session is the next one to
    begin; this is what makes the session-parallel schedule match the reference's data order.
    """
    if events.empty:
        return []
    codes = vocab.encode_column(events["item_id"])
    keep = codes >= 0
    sids = session_codes(events["session_id"])[keep]
    ts = events["ts"].to_numpy()[keep] if "ts" in events else np.arange(int(keep.sum()))
    codes = codes[keep]
    if len(codes) == 0:
        return []
    order = np.lexsort((ts, sids))  # stable grouping by session, time order inside
    sids, ts, codes = sids[order], ts[order], codes[order]
    starts = np.flatnonzero(np.r_[True, sids[1:] != sids[:-1]])
    sessions = np.split(codes, starts[1:])
    first_ts = ts[starts]
    by_time = np.argsort(first_ts, kind="stable")
    return [sessions[i] for i in by_time]


def session_parallel_schedule(
    sessions: Sequence[np.ndarray], batch_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lay sessions out on ``batch_size`` parallel lanes, one event per lane per step.

    Returns ``(inputs, targets, starts)``, each ``[n_steps, batch_size]``: the item fed at each
    step, the item to predict (``PAD`` where the lane has run out of sessions) and whether a new
    session begins in that lane at that step (its hidden state must be reset). A lane that finishes a
    session takes the next unassigned one, lanes finishing at the same step taking them in lane
    order, which is the reference implementation's order. Sessions with fewer than two events have
    no transition and are skipped.
    """
    lengths = np.fromiter((len(s) for s in sessions), dtype=np.int64, count=len(sessions))
    usable = np.flatnonzero(lengths >= 2)
    n_trans = lengths[usable] - 1
    lane = np.empty(len(usable), dtype=np.int64)
    begin = np.empty(len(usable), dtype=np.int64)
    free: list[tuple[int, int]] = [(0, b) for b in range(batch_size)]  # (step the lane is free, lane)
    for j, n in enumerate(n_trans.tolist()):
        t, b = heapq.heappop(free)
        lane[j], begin[j] = b, t
        heapq.heappush(free, (t + n, b))
    n_steps = int((begin + n_trans).max()) if len(usable) else 0
    inputs = np.full((n_steps, batch_size), PAD, dtype=np.int64)
    targets = np.full((n_steps, batch_size), PAD, dtype=np.int64)
    starts = np.zeros((n_steps, batch_size), dtype=bool)
    if n_steps == 0:
        return inputs, targets, starts
    flat = np.concatenate([sessions[i] for i in usable]).astype(np.int64)
    offsets = np.r_[0, np.cumsum(lengths[usable])[:-1]]
    # one row per transition: session j, position p (0 .. n_trans[j]-1)
    rep = np.repeat(np.arange(len(usable)), n_trans)
    pos = np.arange(int(n_trans.sum())) - np.repeat(np.cumsum(n_trans) - n_trans, n_trans)
    steps = begin[rep] + pos
    lanes = lane[rep]
    src = offsets[rep] + pos
    inputs[steps, lanes] = flat[src]
    targets[steps, lanes] = flat[src + 1]
    starts[begin, lane] = True
    return inputs, targets, starts


def pad_sessions(sessions: Sequence[np.ndarray], max_len: int | None = None, left: bool = False) -> np.ndarray:
    """Stack sessions into a ``[len(sessions), L]`` matrix padded with ``PAD``.

    ``max_len`` keeps the last ``max_len`` items of longer sessions (the most recent context).
    Right padding suits recurrent models (the state at position t depends only on the past); left
    padding suits fixed-window models that read the final position.
    """
    lens = [len(s) if max_len is None else min(len(s), max_len) for s in sessions]
    width = max(max(lens, default=0), 1)
    out = np.full((len(sessions), width), PAD, dtype=np.int64)
    for i, (s, n) in enumerate(zip(sessions, lens, strict=True)):
        if n:
            if left:
                out[i, width - n :] = s[len(s) - n :]
            else:
                out[i, :n] = s[len(s) - n :]
    return out


def prefix_batches(sessions: Sequence[np.ndarray], max_targets: int) -> Iterator[list[int]]:
    """Group consecutive session indices so each group has about ``max_targets`` next-item targets.

    Keeping sessions consecutive keeps evaluation output in session order; bounding targets bounds
    the ``[targets, n_items]`` score matrix each group produces.
    """
    group: list[int] = []
    count = 0
    for i, s in enumerate(sessions):
        n = max(len(s) - 1, 0)
        if n == 0:
            continue
        if group and count + n > max_targets:
            yield group
            group, count = [], 0
        group.append(i)
        count += n
    if group:
        yield group


class NegativeSampler:
    """Popularity-weighted item sampler with a pre-drawn cache (counts ** alpha).

    ``alpha=0`` is uniform, ``alpha=1`` proportional to popularity. Drawing millions of samples in
    one vectorised search and slicing them per step is much cheaper than sampling every step.
    """

    def __init__(
        self,
        counts: np.ndarray,
        n_sample: int,
        alpha: float,
        cache_size: int,
        generator: torch.Generator,
        device: torch.device | str = "cpu",
    ) -> None:
        weights = np.asarray(counts, dtype=np.float64) ** alpha
        weights = np.where(np.isfinite(weights), weights, 0.0)
        cdf = np.cumsum(weights)
        cdf = cdf / cdf[-1]
        self.cdf = torch.as_tensor(cdf, dtype=torch.float64)
        self.n_sample = int(n_sample)
        self.rows = max(1, int(cache_size) // max(self.n_sample, 1))
        self.generator = generator
        self.device = torch.device(device)
        self._cache: torch.Tensor | None = None
        self._next = 0
        self._refill_state: torch.Tensor | None = None

    def _refill(self) -> None:
        self._refill_state = self.generator.get_state()  # the cache can be redrawn from it (resume)
        u = torch.rand(self.rows * self.n_sample, generator=self.generator, dtype=torch.float64)
        idx = torch.searchsorted(self.cdf, u, right=True).clamp_(max=len(self.cdf) - 1)
        self._cache = idx.view(self.rows, self.n_sample).to(self.device)
        self._next = 0

    def sample(self) -> torch.Tensor:
        """The next ``n_sample`` item indices (shared by every lane of one step)."""
        if self._cache is None or self._next >= self.rows:
            self._refill()
        out = self._cache[self._next]
        self._next += 1
        return out

    def state_dict(self) -> dict[str, Any]:
        """Where the sampler is in its stream (a few KB, not the cache): saved in checkpoints."""
        return {"refill_state": self._refill_state, "next": self._next}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly where :meth:`state_dict` was taken: redraw that cache, skip what was used."""
        if state.get("refill_state") is None:
            return
        self.generator.set_state(state["refill_state"])
        self._refill()
        self._next = int(state["next"])
