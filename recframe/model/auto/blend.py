"""The blend stage of ``model=auto``: weights and score scaling of the best members, fitted on validation.

Each candidate member scores the validation sample once; for every point of a weight grid (and,
for GRU4Rec, both min-max and softmax scaling) the blended scores are ranked against the targets,
batch by batch, so the score matrices are never all held at once. A grid over a handful of
members is small (11 points for two members, 21 for three) and each point costs one ranking pass,
which is why the grid is exhaustive rather than searched. The grid's corners are the single members:
a blend is kept only when it scores strictly higher than the best of them. Blends of three members
are scored with min-max scaling only, to keep the grid at 21 ranking passes.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from recframe.evaluation import ranks_of_targets, scores_as_numpy
from recframe.interfaces import Model
from recframe.model.auto.validset import ValidSet, groups
from recframe.model.hybrid import normalise

GROUP_TARGETS = 1024  # targets ranked per batch: bounds memory at members x 1024 x catalogue floats


@dataclass
class BlendPoint:
    weights: dict[str, float]
    normalize: dict[str, str]
    score: float

    @property
    def members(self) -> list[str]:
        return [k for k, w in self.weights.items() if w > 0]

    def to_dict(self) -> dict[str, Any]:
        return {"weights": self.weights, "normalize": self.normalize, "score": self.score}


def weight_grid(n: int) -> list[tuple[float, ...]]:
    """Points of the simplex with step 0.1 (two members) or 0.2 (three or more), corners included."""
    steps = 10 if n <= 2 else 5
    points = [c for c in itertools.product(range(steps + 1), repeat=n) if sum(c) == steps]
    return [tuple(round(x / steps, 3) for x in c) for c in points]


def scalings(names: list[str], neural: set[str]) -> list[dict[str, str]]:
    """Score scalings to try: min-max for all; for a neural member (logits) in a blend of two, softmax too."""
    both = len(names) <= 2
    options = [["minmax", "softmax"] if n in neural and both else ["minmax"] for n in names]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*options)]


def fit_blend(members: Mapping[str, Model], validset: ValidSet, neural: set[str]) -> list[BlendPoint]:
    """Every grid point's validation score, best first (ties: fewer members, then grid order)."""
    names = list(members)
    grid = weight_grid(len(names))
    scales = scalings(names, neural)
    ranks: dict[tuple[int, int], list[np.ndarray]] = {}
    for part in groups(validset.sample, GROUP_TARGETS):
        raw, targets = {}, None
        for name, model in members.items():
            chunks = list(model.score_prefixes(part, batch_size=512))
            raw[name] = np.concatenate([scores_as_numpy(c) for c, _ in chunks])
            targets = np.concatenate([np.asarray(t) for _, t in chunks])
        for si, scale in enumerate(scales):
            normed = {n: normalise(raw[n], scale[n]) for n in names}
            for gi, w in enumerate(grid):
                if any(scale[n] != "minmax" and wi == 0 for n, wi in zip(names, w, strict=True)):
                    continue  # a scaling of an unused member changes nothing: scored once, as min-max
                total = sum(np.float32(wi) * normed[n] for n, wi in zip(names, w, strict=True) if wi > 0)
                ranks.setdefault((si, gi), []).append(ranks_of_targets(total, targets))
    points = [
        BlendPoint(dict(zip(names, grid[gi], strict=True)), scales[si], validset.value(np.concatenate(r)))
        for (si, gi), r in ranks.items()
    ]
    order = {key: i for i, key in enumerate(ranks)}
    keyed = list(zip(points, ranks, strict=True))
    keyed.sort(key=lambda pk: (-pk[0].score, len(pk[0].members), order[pk[1]]))
    return [p for p, _ in keyed]


def choose(points: list[BlendPoint]) -> tuple[BlendPoint, BlendPoint, str]:
    """``(chosen, best_single, why)``: the blend only when it beats the best single member."""
    singles = [p for p in points if len(p.members) == 1]
    best_single = singles[0]
    best = points[0]
    if len(best.members) > 1 and best.score > best_single.score:
        gain = best.score - best_single.score
        why = (
            f"the blend of {', '.join(best.members)} scored {best.score:.4f} on validation, "
            f"{gain:+.4f} over the best single member ({best_single.members[0]}, {best_single.score:.4f})"
        )
        return best, best_single, why
    why = f"{best_single.members[0]} alone scored {best_single.score:.4f}; no blend scored higher on validation"
    return best_single, best_single, why
