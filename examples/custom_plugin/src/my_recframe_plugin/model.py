"""A first-order transition model: the smallest useful thing a plugin can add to recframe.

It implements recframe's :class:`~recframe.interfaces.Model` contract and nothing else: ``fit``,
``score_next``, ``get_state``/``from_state``. recframe's pipeline, testers, artifact format and
serving then work with it unchanged (the artifact names this class, so it reloads wherever this
package is installed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from recframe import ConfigError, FitContext, Model
from recframe.vocab import ItemVocab, encode_sessions


class TransitionModel(Model):
    """Scores the next item by how often it followed the session's recent items in training.

    ``T[i, j]`` is the share of training transitions out of item ``i`` that went to ``j``. A session
    votes with its last ``window`` items, the item ``t`` steps back weighing ``(1 - decay) ** t``;
    a small popularity prior (``pop_weight``) breaks ties and answers sessions with no known item.

    Args:
        window: recent items that vote (>= 1).
        decay: share of weight lost per step back, in [0, 1).
        pop_weight: weight of the normalised popularity prior (>= 0).
    """

    name = "my_model"

    def __init__(self, window: int = 2, decay: float = 0.5, pop_weight: float = 0.01) -> None:
        # Validate here, before any work: a bad value fails the CLI in a second with one line.
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise ConfigError("model.window", window, "must be an integer >= 1")
        if not isinstance(decay, (int, float)) or not 0 <= decay < 1:
            raise ConfigError("model.decay", decay, "must be a number in [0, 1)")
        if not isinstance(pop_weight, (int, float)) or pop_weight < 0:
            raise ConfigError("model.pop_weight", pop_weight, "must be a number >= 0")
        self.window, self.decay, self.pop_weight = window, float(decay), float(pop_weight)
        self.vocab: ItemVocab | None = None
        self.transitions: sparse.csr_matrix | None = None

    def fit(
        self, train: pd.DataFrame, valid: pd.DataFrame | None = None, ctx: FitContext | None = None
    ) -> TransitionModel:
        self.vocab = ItemVocab.from_events(train)
        n = len(self.vocab)
        sessions = encode_sessions(train, self.vocab)
        src = np.concatenate([s[:-1] for s in sessions if len(s) > 1] or [np.empty(0, np.int64)])
        dst = np.concatenate([s[1:] for s in sessions if len(s) > 1] or [np.empty(0, np.int64)])
        counts = sparse.csr_matrix((np.ones(len(src), np.float32), (src, dst)), shape=(n, n))
        counts.sum_duplicates()
        self.transitions = _row_normalise(counts)
        return self

    def score_next(self, sessions: Sequence[np.ndarray]) -> np.ndarray:
        n = len(self.vocab)
        rows, cols, weights = [], [], []
        for b, s in enumerate(sessions):
            recent = np.asarray(s, dtype=np.int64)[::-1][: self.window]
            rows.extend([b] * len(recent))
            cols.extend(recent.tolist())
            weights.extend((1.0 - self.decay) ** np.arange(len(recent)))
        votes = sparse.csr_matrix((np.asarray(weights, np.float32), (rows, cols)), shape=(len(sessions), n))
        scores = (votes @ self.transitions).toarray()
        pop = self.vocab.popularity().astype(np.float32)
        scores += self.pop_weight * pop / max(float(pop.max()), 1.0)
        return scores

    def get_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        t = self.transitions
        config = {"window": self.window, "decay": self.decay, "pop_weight": self.pop_weight}
        return config, {"data": t.data, "indices": t.indices.astype(np.int64), "indptr": t.indptr.astype(np.int64)}

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, Any], vocab: ItemVocab) -> TransitionModel:
        model = cls(**config)
        model.vocab = vocab
        arrays = {k: np.asarray(v.numpy() if hasattr(v, "numpy") else v) for k, v in tensors.items()}
        n = len(vocab)
        model.transitions = sparse.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=(n, n))
        return model


def _row_normalise(m: sparse.csr_matrix) -> sparse.csr_matrix:
    totals = np.asarray(m.sum(axis=1)).ravel()
    inv = np.divide(1.0, totals, out=np.zeros_like(totals), where=totals > 0)
    return (sparse.diags(inv.astype(np.float32)) @ m).tocsr()
