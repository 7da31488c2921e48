"""Time and trial accounting of ``model=auto``: how much of the budget each stage may use and took.

A search on a shared machine cannot be repeated by the clock, so two modes exist:

* time mode (``max_trials: null``): every stage gets a share of ``budget_minutes``; a stage stops
  starting new work (a trial, an epoch) once what is left of its share would not cover the next
  piece, so the whole search ends inside the budget plus at most the piece running at that moment;
* trial mode (``max_trials: N``): the kNN search runs exactly N trials and GRU4Rec exactly its
  epoch cap (early stopping aside), whatever the clock says, so a test sees the same choice on any
  machine. Seconds are still measured and reported.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

# Shares of the budget. GRU4Rec gains the most from time (each epoch helps), kNN trials are cheap
# once validation is subsampled, and blending plus the kNN refit are a few passes over validation.
KNN_SHARE = 0.2
FINISH_SHARE = 0.1


@dataclass
class Budget:
    """Seconds allowed overall, the clock since the search began, and the seconds per stage."""

    seconds: float
    max_trials: int | None = None
    started: float = field(default_factory=time.perf_counter)
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def by_trials(self) -> bool:
        """True in trial mode (deterministic), False when the clock decides."""
        return self.max_trials is not None

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def left(self) -> float:
        """Seconds left of the whole budget (never negative)."""
        return max(0.0, self.seconds - self.elapsed())

    def knn_deadline(self) -> float:
        """Elapsed-time mark by which the kNN search must stop starting trials."""
        return self.seconds * KNN_SHARE

    def neural_seconds(self, finish_estimate: float = 0.0) -> float:
        """What GRU4Rec may use: all that is left now except the reserve for blending and refitting,
        a tenth of the budget or ``finish_estimate`` (measured from the trials) if that is more."""
        return max(0.0, self.left() - max(self.seconds * FINISH_SHARE, finish_estimate))

    def record(self, stage: str, seconds: float) -> None:
        self.stages[stage] = round(self.stages.get(stage, 0.0) + seconds, 3)

    def summary(self) -> dict[str, Any]:
        """What the artifact and the report show: budget, total used, and seconds and share per stage."""
        used = self.elapsed()
        return {
            "budget_s": round(self.seconds, 1),
            "used_s": round(used, 3),
            "mode": "trials" if self.by_trials else "time",
            "max_trials": self.max_trials,
            "stages": {
                k: {"seconds": v, "share_of_budget": round(v / self.seconds, 4) if self.seconds else None}
                for k, v in self.stages.items()
            },
        }


class Stopwatch:
    """``with Stopwatch(budget, "knn_search"):`` adds the block's seconds to that stage."""

    def __init__(self, budget: Budget, stage: str) -> None:
        self.budget, self.stage = budget, stage

    def __enter__(self) -> Stopwatch:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.budget.record(self.stage, time.perf_counter() - self.t0)
