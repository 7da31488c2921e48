"""The kNN stage of ``model=auto``: an Optuna (TPE) search per kNN model, scored on validation.

The training sessions are indexed once; a trial only builds a model around that index with its
parameters and scores the validation sample, so a trial costs one pass of neighbour search over a
few thousand prefixes. Trials are spent in two phases:

1. each model's start point (:func:`~recframe.model.auto.spaces.start_point`), so every member is
   measured at least once at sensible parameters;
2. then the two best models so far take turns, each with its own seeded TPE study, because the
   blend draws on the best kNN models and a trial spent on a clearly weaker family is wasted.

In time mode a new trial starts only while the kNN share of the budget can cover a trial of that
model as long as its slowest so far; in trial mode exactly ``max_trials`` run.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
import pandas as pd

from recframe.model.auto.budget import Budget
from recframe.model.auto.spaces import SPACES, start_point
from recframe.model.auto.validset import ValidSet
from recframe.model.knn.base import SessionKNNBase
from recframe.model.knn.sknn import SKNN
from recframe.model.knn.stan import STAN
from recframe.model.knn.vsknn import VSKNN
from recframe.model.knn.vstan import VSTAN

log = logging.getLogger("recframe")

KNN_CLASSES: dict[str, type[SessionKNNBase]] = {"sknn": SKNN, "vsknn": VSKNN, "stan": STAN, "vstan": VSTAN}
FOCUS = 2  # models that share the trials after the start points


@dataclass
class TrialRecord:
    """One trial as the artifact and the report show it."""

    number: int
    model: str
    params: dict[str, Any]
    score: float | None
    seconds: float
    state: str = "complete"
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class KNNSearch:
    """Runs the trials of the kNN members over one shared index of ``train``."""

    names: list[str]
    profile: Any
    validset: ValidSet
    budget: Budget
    seed: int
    trials: list[TrialRecord] = field(default_factory=list)
    base: SessionKNNBase | None = None

    def run(self, train: pd.DataFrame) -> list[TrialRecord]:
        if not self.names:
            return self.trials
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # the index every trial shares (it does not depend on parameters); explicit k and
        # sample_size, never used, so fitting it does not profile the data again for scaled defaults
        base = self.base = SKNN(k=1, sample_size=0).fit(train)
        studies = {name: self._study(name, i) for i, name in enumerate(self.names)}
        queue = list(self.names)  # phase 1: one start point each
        while self._may_start(queue[0] if queue else self._next()):
            name = queue.pop(0) if queue else self._next()
            self._trial(name, studies[name], base)
        return self.trials

    def _study(self, name: str, offset: int) -> optuna.Study:
        sampler = optuna.samplers.TPESampler(seed=self.seed + offset, n_startup_trials=3)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        with warnings.catch_warnings():  # enqueue_trial is marked experimental in optuna 2.x
            warnings.simplefilter("ignore")
            study.enqueue_trial(start_point(name, self.profile))
        return study

    def _next(self) -> str:
        """The focus model with the fewest trials among the best ``FOCUS`` (ties: the better one)."""
        best = {n: self.best(n) for n in self.names}
        ranked = sorted(self.names, key=lambda n: -(best[n].score if best[n] and best[n].score is not None else -1))
        focus = ranked[:FOCUS]
        return min(focus, key=lambda n: (sum(t.model == n for t in self.trials), focus.index(n)))

    def _may_start(self, name: str) -> bool:
        if self.budget.by_trials:
            return len(self.trials) < int(self.budget.max_trials)
        if not self.trials:
            return True  # at least one trial, whatever the budget, so the search has a result
        slowest = max((t.seconds for t in self.trials if t.model == name), default=0.0)
        return self.budget.elapsed() + slowest <= self.budget.knn_deadline()

    def _trial(self, name: str, study: optuna.Study, base: SessionKNNBase) -> None:
        t0 = time.perf_counter()
        trial = study.ask()
        with warnings.catch_warnings():  # optuna 2.x warns about its own log-int distribution's step
            warnings.simplefilter("ignore", FutureWarning)
            params = SPACES[name](trial, self.profile)
        number = len(self.trials)
        try:
            model = build(name, params, base)
            score = self.validset.score(model)
        except Exception as e:  # noqa: BLE001 - a failing point is recorded and the search goes on
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            self.trials.append(TrialRecord(number, name, params, None, time.perf_counter() - t0, "fail", str(e)))
            log.warning("model=auto: trial %d (%s) failed: %s", number, name, e)
            return
        study.tell(trial, score)
        seconds = round(time.perf_counter() - t0, 3)
        self.trials.append(TrialRecord(number, name, params, score, seconds))
        log.info("model=auto: trial %d %s %s=%.4f in %.1fs", number, name, self.validset.metric, score, seconds)

    def best(self, name: str) -> TrialRecord | None:
        """The best completed trial of model ``name`` (the earliest among equals)."""
        done = [t for t in self.trials if t.model == name and t.score is not None]
        return max(done, key=lambda t: (t.score, -t.number)) if done else None

    def ranking(self) -> list[TrialRecord]:
        """Each model's best trial, best first."""
        bests = [b for b in (self.best(n) for n in self.names) if b is not None]
        return sorted(bests, key=lambda t: (-t.score, t.number))


def build(name: str, params: dict[str, Any], base: SessionKNNBase) -> SessionKNNBase:
    """Model ``name`` with ``params`` around ``base``'s fitted vocabulary and index (no refit)."""
    model = KNN_CLASSES[name](**params)
    model.vocab, model.index = base.vocab, base.index
    model._fitted()
    return model
