"""Scoring a candidate on validation: the metric ``model.metric`` names, over (a sample of) the prefixes.

Every trial, the GRU4Rec stage and every blend are scored here on the same seeded sample of
validation sessions, with the same full-ranking protocol as the test step (every item ranked, ties
against the target, items already in the session rankable), so their scores compare directly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from recframe.evaluation import metrics_from_ranks, prefix_ranks
from recframe.interfaces import ConfigError, Model
from recframe.model.auto.holdout import sample_sessions
from recframe.vocab import ItemVocab, encode_sessions

METRIC = re.compile(r"^(hr|mrr|ndcg)@([1-9][0-9]{0,2})$")
# targets scored per trial: enough for a stable MRR@20 (its standard error is about 0.005 at this
# size on e-commerce data), few enough that a kNN trial takes seconds on a large catalogue
MAX_TARGETS = 6_000


def parse_metric(value: object) -> tuple[str, int]:
    """``"mrr@20"`` -> ``("mrr", 20)``; anything else is a :class:`ConfigError`."""
    m = METRIC.match(str(value).strip().lower()) if isinstance(value, str) else None
    if m is None:
        raise ConfigError("model.metric", value, "must be hr@K, mrr@K or ndcg@K with K in 1..999, e.g. mrr@20")
    return m.group(1), int(m.group(2))


class ValidSet:
    """Validation sessions encoded in the training vocabulary, and the seeded sample trials score."""

    def __init__(self, valid: pd.DataFrame, vocab: ItemVocab, metric: str, seed: int, max_targets: int = MAX_TARGETS):
        self.metric = metric
        self.name, self.k = parse_metric(metric)
        self.sessions = [s for s in encode_sessions(valid, vocab) if len(s) >= 2]
        self.sample = sample_sessions(self.sessions, max_targets, seed)
        self.targets = int(sum(len(s) - 1 for s in self.sample))

    def value(self, ranks: np.ndarray) -> float:
        """The metric from 1-based ranks of the sample's targets."""
        return metrics_from_ranks(ranks, (self.k,))[f"{self.name}@{self.k}"]

    def score(self, model: Model) -> float:
        """The metric of ``model`` on the sample (0 when validation has no target)."""
        if not self.sample:
            return 0.0
        return self.value(prefix_ranks(model, self.sample))

    def describe(self) -> dict[str, int]:
        return {
            "sessions": len(self.sessions),
            "targets": int(sum(len(s) - 1 for s in self.sessions)),
            "sample_sessions": len(self.sample),
            "sample_targets": self.targets,
        }


def groups(sessions: Sequence[np.ndarray], max_targets: int) -> list[list[np.ndarray]]:
    """Consecutive groups of sessions with about ``max_targets`` targets each (blend scoring batches)."""
    out: list[list[np.ndarray]] = [[]]
    count = 0
    for s in sessions:
        if count >= max_targets:
            out.append([])
            count = 0
        out[-1].append(s)
        count += len(s) - 1
    return [g for g in out if g]
