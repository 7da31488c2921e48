"""The champion/challenger gate: a new model version becomes champion only if it beats the champion.

Both artifacts are scored on the *challenger's* test split with the same full-ranking protocol
(:func:`recframe.evaluation.evaluate`), so the comparison is on equal data even when the champion
was trained on an older window. The challenger wins when its metric exceeds the champion's by the
relative ``margin`` (``registry.metric``, ``registry.margin``). With ``exclude_seen`` (the endpoint's
setting, passed by the pipeline) both are ranked as the endpoint serves them, as the tester's gates are
(:mod:`recframe.tester.served`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from recframe.interfaces import ConfigError

_METRIC = re.compile(r"^(hr|mrr|ndcg|recall|precision)@(\d+)$")


def metric_k(metric: str) -> int:
    """The cut-off of a metric name such as ``mrr@20``; a :class:`ConfigError` for anything else."""
    m = _METRIC.match(str(metric))
    if not m:
        raise ConfigError("registry.metric", metric, "must be a metric such as mrr@20, hr@20 or ndcg@20")
    return int(m.group(2))


def challenge(
    champion_dir: str | Path,
    challenger_dir: str | Path,
    test: pd.DataFrame,
    metric: str = "mrr@20",
    margin: float = 0.0,
    exclude_seen: bool = False,
) -> dict[str, Any]:
    """Score both artifacts on ``test``; ``wins`` is ``challenger > champion * (1 + margin)``."""
    from recframe.artifact import load_model
    from recframe.evaluation import evaluate

    k = metric_k(metric)
    scores = {}
    for role, d in (("champion", champion_dir), ("challenger", challenger_dir)):
        m = served_metrics(load_model(d), test, k) if exclude_seen else evaluate(load_model(d), test, ks=(k,))
        scores[role] = {metric: float(m[metric]), "targets": int(m["targets"])}
    threshold = scores["champion"][metric] * (1.0 + margin)
    return {
        "metric": metric,
        "margin": margin,
        "served": {"exclude_seen": bool(exclude_seen)},
        "champion": scores["champion"],
        "challenger": scores["challenger"],
        "wins": scores["challenger"][metric] > threshold,
    }


def served_metrics(model: Any, test: pd.DataFrame, k: int) -> dict[str, float]:
    """HR/MRR/NDCG@k with the session's items excluded, as the endpoint ranks (one model pass)."""
    from recframe.tester.scoring import encode_test, score_any
    from recframe.tester.served import seen_index

    enc = encode_test(test, model.vocab)
    scored = score_any(model, enc, k, 512, seen_index(enc.sessions)).extra["served"].select(enc.target_mask())
    return {**scored.metrics((k,)), "targets": int(len(scored.ranks))}
