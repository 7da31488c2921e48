"""Full-ranking next-item evaluation shared by testers and benchmarks.

Every item of the vocabulary is ranked (no sampled negatives), the next item is predicted at every
position of every test session (or only at the events the split marked in a ``target`` column, e.g.
``datasource.split.targets: last``), and ties are counted conservatively: the rank of the target is the
number of items scoring at least as high as it, itself included, so a model that scores everything
equally ranks every target last rather than first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from recframe.events import session_codes
from recframe.interfaces import Model
from recframe.vocab import ItemVocab, encode_sessions

DEFAULT_KS = (1, 5, 10, 20)


def scores_as_numpy(scores: Any) -> np.ndarray:
    """A score matrix as float32 numpy, whether a model returned numpy or a (GPU, bf16) tensor."""
    if hasattr(scores, "detach"):
        return scores.detach().float().cpu().numpy()
    return np.asarray(scores, dtype=np.float32)


def ranks_of_targets(scores, targets) -> np.ndarray:
    """Conservative 1-based rank of each target among all items (ties count against the target).

    Counted in numpy: ``count_nonzero`` over a boolean matrix is several times faster on CPU than
    the same reduction in torch, and this pass dominates full-ranking evaluation. Scores on a GPU
    are counted there instead (:func:`ranks_on_device`).
    """
    if hasattr(scores, "detach") and scores.device.type != "cpu":
        return ranks_on_device(scores, targets)
    if hasattr(scores, "detach"):
        scores = scores.detach().float().cpu().numpy()
    s = np.asarray(scores, dtype=np.float32)
    if np.isnan(s).any():
        s = np.where(np.isnan(s), np.float32(-np.inf), s)
    t = np.asarray(targets, dtype=np.int64)
    tgt = s[np.arange(len(t)), t][:, None]
    return np.count_nonzero(s >= tgt, axis=1).astype(np.int64)


def ranks_on_device(scores, targets) -> np.ndarray:
    """:func:`ranks_of_targets` counted with torch on the scores' own device; only the ranks move.

    A GPU's score matrix holds ``n_targets x n_items`` floats (10 GB for Diginetica's test set):
    copying it to the host to count there would cost far more than scoring it. NaN ranks last and
    +/-inf are kept, as in the numpy count.
    """
    import torch

    s = scores.detach().float()
    if bool(torch.isnan(s).any()):
        s = torch.where(torch.isnan(s), torch.full_like(s, float("-inf")), s)
    t = torch.as_tensor(np.asarray(targets, dtype=np.int64), device=s.device).view(-1, 1)
    return (s >= s.gather(1, t)).sum(dim=1).cpu().numpy().astype(np.int64)


def metrics_from_ranks(ranks: np.ndarray, ks: Iterable[int] = DEFAULT_KS) -> dict[str, float]:
    """HR@K (= Recall@K with one target), MRR@K and NDCG@K from 1-based ranks."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out: dict[str, float] = {}
    n = max(len(ranks), 1)
    for k in ks:
        hit = ranks <= k
        out[f"hr@{k}"] = float(hit.sum() / n)
        out[f"mrr@{k}"] = float((hit / ranks).sum() / n)
        out[f"ndcg@{k}"] = float((hit / np.log2(ranks + 1.0)).sum() / n)
    return out


def prefix_ranks(model: Model, sessions: Sequence[np.ndarray], batch_size: int = 512) -> np.ndarray:
    """Ranks for the next item at every position, in session order."""
    parts = [ranks_of_targets(scores, targets) for scores, targets in model.score_prefixes(sessions, batch_size)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def marked_targets(test: pd.DataFrame) -> np.ndarray | None:
    """The split's ``target`` column as booleans, or None when there is no such column or it marks
    every position but each session's first (the default protocol: nothing to filter)."""
    if "target" not in test.columns or test.empty:
        return None
    sid = session_codes(test["session_id"])
    first = np.r_[True, sid[1:] != sid[:-1]]
    flags = test["target"].to_numpy(dtype=bool)
    return None if np.array_equal(flags, ~first) else flags


def target_mask(test: pd.DataFrame, vocab: ItemVocab) -> np.ndarray | None:
    """Which of :func:`prefix_ranks`' targets the split marked (see :func:`marked_targets`)."""
    flags = marked_targets(test)
    if flags is None:
        return None
    keep = vocab.encode_column(test["item_id"]) >= 0
    flags, sid = flags[keep], session_codes(test["session_id"])[keep]
    if len(sid) == 0:
        return np.zeros(0, dtype=bool)
    cut = np.flatnonzero(sid[1:] != sid[:-1]) + 1
    parts = [f[1:] for f in np.split(flags, cut) if len(f) >= 2]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


def evaluate(
    model: Model, test: pd.DataFrame, ks: Iterable[int] = DEFAULT_KS, batch_size: int = 512
) -> dict[str, float]:
    """Full-ranking metrics of ``model`` on long-format ``test`` events.

    Test items unknown to the model's vocabulary are dropped from the sessions (they cannot be
    targets); the number of targets scored is returned as ``targets``.
    """
    sessions = [s for s in encode_sessions(test, model.vocab) if len(s) >= 2]
    ranks = prefix_ranks(model, sessions, batch_size)
    mask = target_mask(test, model.vocab)
    if mask is not None:  # the split asked for fewer targets (`targets: last`): score them only
        ranks = ranks[mask]
    out = metrics_from_ranks(ranks, ks)
    out["targets"] = int(len(ranks))
    return out
