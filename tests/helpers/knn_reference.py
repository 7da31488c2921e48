"""Session-kNN scores straight from the session-rec definitions, one candidate neighbour at a time.

The vectorised models in ``recframe.model.knn`` are checked against this loop: it is slow and
obvious on purpose, so a reader can hold it against the papers. ``train`` lists the training
sessions as item codes, oldest first; ``ages`` gives each session's age in days behind the newest
one (only needed when STAN's ``lambda_snh`` is on).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recframe.model.knn.sknn import SKNN
from recframe.model.knn.stan import STAN
from recframe.model.knn.vsknn import VSKNN
from recframe.model.knn.vstan import VSTAN

# V-SKNN's weight of the item at position p of n in the similarity
POSITION_WEIGHT = {
    "same": lambda p, n: 1.0,
    "div": lambda p, n: p / n,
    "quadratic": lambda p, n: (p / n) ** 2,
    "linear": lambda p, n: max(0.0, 1 - 0.1 * (n - p)),
    "log": lambda p, n: 1 / math.log10(n - p + 1.7),
}
# V-SKNN's decay of a neighbour's vote by the step t from the end of the prefix
STEP_DECAY = {
    "same": lambda t: 1.0,
    "div": lambda t: 1 / t,
    "quadratic": lambda t: 1 / t**2,
    "log": lambda t: 1 / math.log10(t + 1.7),
    "linear": lambda t: max(0.0, 1 - 0.1 * t),
}


@dataclass
class Reference:
    """The reference's scores, whether the ``k`` cut fell inside a tie, and the neighbours chosen."""

    scores: np.ndarray
    tie_at_cut: bool
    chosen: list[int]


def _weights(model, prefix: list[int]) -> dict[int, float]:
    n = len(prefix)
    last = {item: i + 1 for i, item in enumerate(prefix)}  # a repeated item keeps its latest position
    if isinstance(model, VSKNN):
        return {j: POSITION_WEIGHT[model.weighting](p, n) for j, p in last.items()}
    if isinstance(model, STAN) and model.lambda_spw is not None:
        return {j: math.exp((p - n) / model.lambda_spw) for j, p in last.items()}
    return dict.fromkeys(last, 1.0)


def _similarity(model, w: dict[int, float], items: set[int]) -> float:
    shared = set(w) & items
    if isinstance(model, SKNN):
        return len(shared) / math.sqrt(len(w) * len(items))
    if isinstance(model, VSKNN):
        return sum(w[j] for j in shared) / len(w)
    return sum(w[j] for j in shared) / (math.sqrt(sum(x * x for x in w.values())) * math.sqrt(len(items)))


def reference(
    model,
    train: Sequence[Sequence[int]],
    prefix: list[int],
    counts: np.ndarray,
    ages: Sequence[float] | None = None,
) -> Reference:
    """Score every item for ``prefix`` as ``model`` (SKNN, VSKNN, STAN or VSTAN) defines it."""
    stan = isinstance(model, STAN)
    pset = set(prefix)
    cands = [s for s, items in enumerate(train) if pset & set(items)]
    if model.sample_size and len(cands) > model.sample_size:
        cands = cands[-model.sample_size :]  # the most recent
    w = _weights(model, prefix)
    sim = {}
    for s in cands:
        value = _similarity(model, w, set(train[s]))
        if stan and model.lambda_snh is not None:
            if ages is None:
                raise ValueError("lambda_snh needs the sessions' ages")
            value *= math.exp(-ages[s] / model.lambda_snh)
        if value > 0:
            sim[s] = value
    newest = model.tie_break == "newest"
    ranked = sorted(sim, key=lambda s: (-round(sim[s], 10), -s if newest else s))
    chosen = ranked[: model.k]
    tie_at_cut = len(ranked) > model.k and round(sim[ranked[model.k - 1]], 10) == round(sim[ranked[model.k]], 10)
    idf = np.log(len(train) / np.maximum(np.asarray(counts, dtype=float), 1.0))
    out = np.zeros(len(counts))
    for s in chosen:
        step = next(t for t, j in enumerate(reversed(prefix), 1) if j in set(train[s]))
        vote = sim[s]
        if isinstance(model, VSKNN):
            vote *= STEP_DECAY[model.weighting_score](step)
        if isinstance(model, VSTAN) and model.lambda_ipw is not None:
            vote *= math.exp((1 - step) / model.lambda_ipw)
        last_in_s = {j: i + 1 for i, j in enumerate(train[s])}
        anchor = max(i + 1 for i, j in enumerate(train[s]) if j in pset)
        for j, pos in last_in_s.items():
            v = vote
            if stan and model.lambda_inh is not None:
                v *= math.exp(-abs(pos - anchor) / model.lambda_inh)
            if isinstance(model, VSKNN) and model.idf_weighting:
                v *= 1 + model.idf_weighting * idf[j]
            if isinstance(model, VSTAN) and model.lambda_idf:
                v *= 1 + model.lambda_idf * idf[j]
            out[j] += v
    return Reference(out, tie_at_cut, chosen)
