"""One batched pass over the test split that every tester builds on.

:mod:`recframe.evaluation` defines the protocol (full ranking, conservative ties, next item at every
position). Testers need more than the ranks, though: the top-K lists (for coverage, popularity bias,
"less wrong" and slices) and where each target sits (which session, after how many items, after which
action). Scoring is by far the most expensive part of a test run, so this module scores every prefix
exactly once and derives ranks *and* top-K from the same score batch, instead of calling
``evaluate`` and then scoring again.

The popularity baseline scores every prefix identically, so its ranks and top-K are computed in closed
form from the popularity vector: it costs milliseconds even on Diginetica-sized test sets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recframe.evaluation import marked_targets, metrics_from_ranks
from recframe.interfaces import DataError, Model
from recframe.model.pop import PopModel
from recframe.tester.served import SeenIndex
from recframe.vocab import ItemVocab


@dataclass
class EncodedTest:
    """Test sessions as vocabulary indices, with the per-event columns the slices need.

    Unknown items are dropped (they can be neither inputs nor targets, exactly as in
    :func:`recframe.evaluation.evaluate`); ``actions`` keeps the action of each kept event (or None).
    """

    sessions: list[np.ndarray]
    session_ids: list[str]
    actions: list[np.ndarray] | None
    unknown_events: int
    #: per kept event, whether the split marked it a target (``datasource.split.targets``); None = all
    flags: list[np.ndarray] | None = None

    def target_mask(self) -> np.ndarray | None:
        """Which prefixes of :meth:`Model.score_prefixes` order are targets (None: every one)."""
        if self.flags is None:
            return None
        parts = [f[1:] for f in self.flags if len(f) >= 2]
        return np.concatenate(parts).astype(bool) if parts else np.zeros(0, dtype=bool)

    def target_index(self) -> tuple[np.ndarray, np.ndarray]:
        """For every next-item target, in :meth:`Model.score_prefixes` order: its session index and its
        position (the prefix length, i.e. how many items the model saw before predicting it)."""
        lengths = np.fromiter((len(s) for s in self.sessions), dtype=np.int64, count=len(self.sessions))
        n_targets = np.maximum(lengths - 1, 0)
        session_of = np.repeat(np.arange(len(self.sessions)), n_targets)
        starts = np.repeat(np.cumsum(n_targets) - n_targets, n_targets)
        position = np.arange(int(n_targets.sum())) - starts + 1
        mask = self.target_mask()
        if mask is not None:
            session_of, position = session_of[mask], position[mask]
        return session_of, position


def encode_test(test: pd.DataFrame, vocab: ItemVocab, min_length: int = 2) -> EncodedTest:
    """Encode long-format test events against ``vocab``; keep sessions with at least ``min_length`` known items."""
    if test.empty:
        return EncodedTest([], [], None, 0)
    codes = vocab.encode_column(test["item_id"])
    keep = codes >= 0
    unknown = int((~keep).sum())
    codes = codes[keep]
    sids = test["session_id"].astype(str).to_numpy()[keep]
    actions = test["action"].astype(str).to_numpy()[keep] if "action" in test.columns else None
    flags = marked_targets(test)
    flags = None if flags is None else flags[keep]  # the split's target flags of the kept events
    if len(codes) == 0:
        return EncodedTest([], [], None, unknown)
    cut = np.flatnonzero(sids[1:] != sids[:-1]) + 1
    sessions = np.split(codes, cut)
    starts = np.concatenate([[0], cut])
    keep_s = [i for i, s in enumerate(sessions) if len(s) >= min_length]
    act_parts = np.split(actions, cut) if actions is not None else None
    flag_parts = np.split(flags, cut) if flags is not None else None
    return EncodedTest(
        sessions=[sessions[i] for i in keep_s],
        session_ids=[str(sids[starts[i]]) for i in keep_s],
        actions=[act_parts[i] for i in keep_s] if act_parts is not None else None,
        unknown_events=unknown,
        flags=[flag_parts[i] for i in keep_s] if flag_parts is not None else None,
    )


@dataclass
class ScoredTargets:
    """Ranks and top-K lists of one model for every next-item target of the test split."""

    ranks: np.ndarray  # [n] conservative 1-based rank of the target, exact up to K; K + 1 = "beyond K"
    topk: np.ndarray  # [n, K] item indices, best first
    targets: np.ndarray  # [n] target item index
    n_items: int
    score_columns: int  # width of the score matrices the model returned (must equal n_items)
    nonfinite_rows: int = 0  # rows holding NaN/inf scores (NaN ranks last, as in evaluation.py)
    extra: dict = field(default_factory=dict)

    def metrics(self, ks: Iterable[int]) -> dict[str, float]:
        return metrics_from_ranks(self.ranks, ks)

    def select(self, mask: np.ndarray | None) -> ScoredTargets:
        """Only the targets where ``mask`` is true (``None``: all of them)."""
        if mask is None:
            return self
        return dataclasses.replace(self, ranks=self.ranks[mask], topk=self.topk[mask], targets=self.targets[mask])


def _rank_and_topk(scores, targets: np.ndarray, k: int):
    """Conservative ranks and top-``k`` indices from one score batch, in one pass over the scores.

    Every metric the testers report is "@K" with K <= ``k``, so a target's rank only matters up to
    ``k``. The top-k lists are needed anyway (coverage, popularity bias, "less wrong", slices), and
    ``torch.topk`` reads every score once; comparing the target's score with the top-k *values* then
    gives its exact conservative rank whenever it is inside the top k, and proves a miss whenever it
    scores strictly below the k-th value. Only rows where the target ties the k-th value (or that hold
    NaN) need the full ``scores >= target`` count. Ranks and top-k together thus cost one topk
    instead of a topk plus the full count (evaluation speed: docs/benchmarks.md).

    Ranks beyond ``k`` are reported as ``k + 1`` ("a miss at every cut-off"). NaN scores count as
    -inf (rank last) and +/-inf are kept, exactly as in :func:`recframe.evaluation.ranks_of_targets`.
    """
    import torch

    s = torch.as_tensor(scores)
    if s.dtype != torch.float32:
        s = s.float()
    t = torch.as_tensor(np.asarray(targets), dtype=torch.long, device=s.device).view(-1, 1)
    kk = min(k, s.shape[1])
    vals, top = torch.topk(s, kk, dim=1, sorted=True)
    tgt = s.gather(1, t)
    # NaN sorts above everything in topk, so a row holding NaN shows it in its top values
    bad = torch.isnan(vals).any(dim=1) | torch.isnan(tgt[:, 0])
    kth = vals[:, -1]
    ranks = torch.where(tgt[:, 0] > kth, (vals >= tgt).sum(dim=1), torch.full_like(kth, k + 1, dtype=torch.long))
    need_full = bad | (tgt[:, 0] == kth)
    n_bad = int(bad.sum())
    if bool(need_full.any()):
        rows = need_full.nonzero().view(-1)
        sub = s[rows]
        sub = torch.where(torch.isnan(sub), torch.full_like(sub, float("-inf")), sub)  # NaN ranks last
        sub_t = sub.gather(1, t[rows])
        full = (sub >= sub_t).sum(dim=1)
        ranks[rows] = torch.clamp(full, max=k + 1) if kk == k else full
        if n_bad:
            top[rows] = torch.topk(sub, kk, dim=1, sorted=True).indices
    return ranks.cpu().numpy().astype(np.int64), top.cpu().numpy().astype(np.int32), n_bad


def _served_rank_and_topk(scores, targets: np.ndarray, k: int, seen: SeenIndex, start: int):
    """Ranks and top-``k`` as the endpoint ranks with ``exclude_seen``: the prefix's items score -inf.

    Works on the score batch the headline ranking used, so the served figures cost one extra ranking,
    not a second model pass. The model may own that array: the masked entries are put back afterwards
    (a read-only array is copied instead). A target that repeats an item of its prefix can never be
    returned: it is a miss at every cut-off. Top-k slots the endpoint would drop (only -inf left, in
    catalogues smaller than k plus the session) hold -1.
    """
    import torch

    if isinstance(scores, np.ndarray) and not scores.flags.writeable:
        s = torch.from_numpy(np.array(scores, dtype=np.float32))  # a read-only array: work on a copy
    else:
        s = torch.as_tensor(scores)
    if s.dtype != torch.float32:
        s = s.float()  # already a copy
    elif isinstance(scores, torch.Tensor) and (not s.is_contiguous() or s.requires_grad):
        s = s.clone()  # a broadcast view (one row for all) cannot be written row by row
    stop = start + s.shape[0]
    rows, cols = seen.batch(start, stop)
    r = torch.from_numpy(rows).to(s.device)
    c = torch.from_numpy(cols).to(s.device)
    saved = s[r, c].clone()
    s[r, c] = float("-inf")
    try:
        ranks, top, _ = _rank_and_topk(s, targets, k)
        picked = s.gather(1, torch.from_numpy(top.astype(np.int64)).to(s.device))
        top[torch.isneginf(picked).cpu().numpy()] = -1
    finally:
        s[r, c] = saved  # duplicates of one item restore the same value
    ranks[seen.repeat[start:stop]] = k + 1
    return ranks, top


def score_model(
    model: Model, sessions: list[np.ndarray], k: int, batch_size: int = 512, seen: SeenIndex | None = None
) -> ScoredTargets:
    """Score every prefix of every session once; keep the ranks and the top-``k`` items.

    With ``seen`` (:func:`recframe.tester.served.seen_index` of ``sessions``) the same score batches
    are ranked a second time with the session's items excluded; that ranking is ``extra["served"]``.
    """
    import torch

    n_items = len(model.vocab)
    ranks, tops, tgts, s_ranks, s_tops = [], [], [], [], []
    width, n_bad, start = n_items, 0, 0
    with torch.inference_mode():
        for scores, targets in model.score_prefixes(sessions, batch_size):
            targets = np.asarray(targets, dtype=np.int64)
            width = int(scores.shape[1])
            r, top, b = _rank_and_topk(scores, targets, k)
            ranks.append(r)
            tops.append(top)
            tgts.append(targets)
            n_bad += b
            if seen is not None and width == n_items:
                sr, st = _served_rank_and_topk(scores, targets, k, seen, start)
                s_ranks.append(sr)
                s_tops.append(st)
            start += len(targets)
    if not ranks:
        empty = ScoredTargets(np.zeros(0, np.int64), np.zeros((0, k), np.int32), np.zeros(0, np.int64), n_items, width)
        if seen is not None:
            empty.extra["served"] = dataclasses.replace(empty)
        return empty
    out = ScoredTargets(
        ranks=np.concatenate(ranks),
        topk=np.concatenate(tops),
        targets=np.concatenate(tgts),
        n_items=n_items,
        score_columns=width,
        nonfinite_rows=n_bad,
    )
    if s_ranks and len(s_ranks) == len(ranks):
        served = dataclasses.replace(out, ranks=np.concatenate(s_ranks), topk=np.concatenate(s_tops), extra={})
        out.extra["served"] = served
    return out


def constant_ranking(scores: np.ndarray, targets: np.ndarray, k: int) -> ScoredTargets:
    """Ranks and top-K when every prefix gets the same ``scores`` (popularity): no per-row work.

    The conservative rank of item ``i`` is the number of items scoring at least ``scores[i]``,
    which a sort and a binary search give for all items at once.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    asc = np.sort(scores)
    item_rank = n - np.searchsorted(asc, scores, side="left")  # items with score >= s_i
    order = np.argsort(-scores, kind="stable")[:k].astype(np.int32)
    targets = np.asarray(targets, dtype=np.int64)
    return ScoredTargets(
        ranks=item_rank[targets].astype(np.int64),
        topk=np.broadcast_to(order, (len(targets), len(order))),
        targets=targets,
        n_items=n,
        score_columns=n,
    )


def constant_ranking_served(scores: np.ndarray, sessions: list[np.ndarray], k: int) -> ScoredTargets:
    """:func:`constant_ranking` as the endpoint ranks it with ``exclude_seen``, still without a score matrix.

    With the session's items removed, a target that is not one of them moves up by the number of
    (distinct) session items scoring at least as high; a target that is one of them is a miss. The
    top-K is the constant order with the session's items skipped.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    item_rank = n - np.searchsorted(np.sort(scores), scores, side="left")
    order = np.argsort(-scores, kind="stable").astype(np.int32)
    ranks, tops, targets = [], [], []
    for sess in sessions:
        sess = np.asarray(sess, dtype=np.int64)
        for p in range(1, len(sess)):
            seen = np.unique(sess[:p])
            t = int(sess[p])
            ranks.append(k + 1 if t in seen else int(item_rank[t] - np.count_nonzero(scores[seen] >= scores[t])))
            head = order[: k + len(seen)]
            top = head[~np.isin(head, seen)][:k]
            tops.append(np.pad(top, (0, k - len(top)), constant_values=-1))
            targets.append(t)
    width = min(k, n)
    return ScoredTargets(
        ranks=np.asarray(ranks, dtype=np.int64),
        topk=np.asarray(tops, dtype=np.int32).reshape(len(tops), k)[:, :width],
        targets=np.asarray(targets, dtype=np.int64),
        n_items=n,
        score_columns=n,
    )


def flat_targets(sessions: list[np.ndarray]) -> np.ndarray:
    """The next-item targets of every prefix, in :meth:`Model.score_prefixes` order."""
    parts = [s[1:] for s in sessions if len(s) >= 2]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def fit_pop_baseline(train: pd.DataFrame) -> PopModel:
    """The popularity baseline every run is compared with, fitted on the same training split."""
    if train.empty:
        raise DataError("cannot fit the popularity baseline: the train split is empty")
    return PopModel().fit(train)


def score_baseline(pop: PopModel, test: pd.DataFrame, k: int) -> tuple[ScoredTargets, EncodedTest]:
    """The popularity baseline on ``test``, encoded against its own vocabulary."""
    enc = encode_test(test, pop.vocab)
    targets = flat_targets(enc.sessions)
    return constant_ranking(pop.vocab.popularity(), targets, k).select(enc.target_mask()), enc


def score_any(
    model: Model, enc: EncodedTest, k: int, batch_size: int = 512, seen: SeenIndex | None = None
) -> ScoredTargets:
    """Use the closed form for popularity models, the batched pass for everything else.

    With ``seen`` the result also holds the served ranking in ``extra["served"]`` (see
    :func:`score_model`; popularity: :func:`constant_ranking_served`).
    """
    if type(model) is PopModel:
        out = constant_ranking(model.vocab.popularity(), flat_targets(enc.sessions), k)
        if seen is not None:
            out.extra["served"] = constant_ranking_served(model.vocab.popularity(), enc.sessions, k)
        return out
    return score_model(model, enc.sessions, k, batch_size, seen)


def coverage_at_k(topk: np.ndarray, n_items: int, k: int) -> float:
    """Catalogue coverage@K: share of the catalogue that appears in at least one row's top K.

    Per row, the first ``k`` columns of that row (reclist 2.1.0 wrongly takes the first ``k`` rows).
    """
    if n_items == 0 or len(topk) == 0:
        return 0.0
    seen = np.zeros(n_items, dtype=bool)
    top = topk[:, :k]
    if top.strides[0] == 0:  # a broadcast constant ranking: one row is all rows
        top = top[:1]
    flat = top.ravel()
    seen[flat[(flat >= 0) & (flat < n_items)]] = True  # a padding column is not a catalogue item
    return float(seen.sum() / n_items)


def popularity_bias_at_k(topk: np.ndarray, popularity: np.ndarray, k: int) -> float:
    """Popularity bias@K: the mean, over rows, of the mean normalised training popularity of that
    row's top K (popularity = count / max count, so 1.0 means "always the single most popular item").

    Each row is averaged over its own K items (reclist 2.1.0 divides by the wrong length).
    """
    if len(topk) == 0:
        return 0.0
    pop = np.asarray(popularity, dtype=np.float64)
    norm = pop / pop.max() if len(pop) and pop.max() > 0 else pop
    top = topk[:, :k]
    if top.size and top.max() >= len(norm):  # indices beyond the catalogue (padding) have no popularity
        norm = np.concatenate([norm, np.zeros(int(top.max()) + 1 - len(norm))])
    if top.size and top.min() < 0:  # -1: a slot the endpoint leaves empty has no popularity
        norm = np.concatenate([norm, [0.0]])
        top = np.where(top < 0, len(norm) - 1, top)
    if top.strides[0] == 0:
        return float(norm[top[0]].mean())
    return float(norm[top].mean(axis=1).mean())


def beyond_accuracy(scored: ScoredTargets, popularity: np.ndarray, ks: Iterable[int]) -> dict[str, float]:
    """coverage@K and popbias@K for each K (limited to the K the top-K lists hold)."""
    out: dict[str, float] = {}
    width = scored.topk.shape[1] if scored.topk.ndim == 2 else 0
    for k in ks:
        if k > width:
            continue
        out[f"coverage@{k}"] = coverage_at_k(scored.topk, scored.n_items, k)
        out[f"popbias@{k}"] = popularity_bias_at_k(scored.topk, popularity, k)
    return out
