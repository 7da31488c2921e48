"""``model=auto``: the kNN family and GRU4Rec searched, trained and blended on validation, in a time budget.

``fit`` runs four stages, each timed (:mod:`~recframe.model.auto.budget`):

1. validation: the given split, or the newest training sessions (:mod:`~recframe.model.auto.holdout`);
2. kNN search: Optuna over each kNN member's data-scaled space (:mod:`~recframe.model.auto.search`);
3. GRU4Rec: sized to the data and device, trained in what the budget leaves (:mod:`~recframe.model.auto.neural`);
4. blend and refit: weights of the best members fitted on validation, then the chosen kNN members
   re-indexed on train plus validation (:mod:`~recframe.model.auto.blend`, :mod:`~recframe.model.auto.refit`).

The fitted model *is* a :class:`~recframe.model.hybrid.WeightedHybrid` of the chosen members (a
single winner is a hybrid of one, with its raw scores), so the artifact, serving and the testers
treat it as any hybrid. The search log (every trial, the GRU4Rec run, the blend grid and why the
winner won) travels in the artifact and is written to ``<run>/train/auto_search.json`` for the
run report.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pandas as pd

from recframe import atomic
from recframe import validation as V
from recframe.interfaces import ConfigError, DataError, FitContext, Model
from recframe.model.auto.blend import choose, fit_blend
from recframe.model.auto.budget import Budget, Stopwatch
from recframe.model.auto.holdout import split_validation
from recframe.model.auto.neural import MIN_SECONDS, fit_gru
from recframe.model.auto.refit import refit_knn, shared_vocab, train_plus_valid
from recframe.model.auto.validset import ValidSet, parse_metric
from recframe.model.hybrid import WeightedHybrid
from recframe.model.profile import DataProfile
from recframe.vocab import ItemVocab

log = logging.getLogger("recframe")

CANDIDATES = ("sknn", "vsknn", "stan", "vstan", "gru")
KNN_IN_BLEND = 2  # best kNN models (one trial each) that join GRU4Rec in the blend grid
SEARCH_FILE = "auto_search.json"


def _candidates(value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence) and not hasattr(value, "__iter__"):
        raise ConfigError("model.members", value, f"must be a list of models from {', '.join(CANDIDATES)}")
    names = [str(v) for v in value]
    if not names:
        raise ConfigError("model.members", value, f"must name at least one of {', '.join(CANDIDATES)}")
    for n in names:
        V.choice("model.members", n, CANDIDATES)
    if len(set(names)) != len(names):
        raise ConfigError("model.members", names, "must not name a model twice")
    return names


def blend_seconds(targets: int, items: int) -> float:
    """A rough CPU estimate of the blend's catalogue-wide work: 21 weighted rankings of
    ``targets x items`` scores (~2.5 ns per score each) and GRU4Rec scoring them (~0.1 ns per score
    and unit of a 384-wide layer, 2 cores)."""
    cells = float(targets) * float(items)
    return cells * (21 * 2.5e-9 + 384 * 1e-10)


class AutoModel(WeightedHybrid):
    """Searches the members, then behaves as the :class:`WeightedHybrid` it chose (module docstring)."""

    name = "auto"

    def __init__(
        self,
        budget_minutes: float = 10,
        metric: str = "mrr@20",
        max_trials: int | None = None,
        members: Sequence[str] = CANDIDATES,
        max_epochs: int = 20,
    ) -> None:
        self.budget_minutes = V.positive("model.budget_minutes", budget_minutes)
        parse_metric(metric)
        self.metric = str(metric).strip().lower()
        self.max_trials = None if max_trials is None else V.integer("model.max_trials", max_trials, 1)
        self.candidates = _candidates(members)
        self.max_epochs = V.integer("model.max_epochs", max_epochs, 1)
        self.members: dict[str, Model] = {}
        self.weights: dict[str, float] = {}
        self.normalize: dict[str, str] = {}
        self.seeds: dict[str, int] = {}
        self.vocab: ItemVocab | None = None
        self.search_log: dict[str, Any] = {}

    @property
    def epochs_run(self) -> int | None:
        """GRU4Rec's epochs in the last search (None when GRU4Rec was not trained)."""
        return (self.search_log.get("gru") or {}).get("epochs")

    def settings(self) -> dict[str, Any]:
        return {
            "budget_minutes": self.budget_minutes,
            "metric": self.metric,
            "max_trials": self.max_trials,
            "members": list(self.candidates),
            "max_epochs": self.max_epochs,
        }

    # ---- the search ------------------------------------------------------------------------

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None, ctx: FitContext | None = None) -> AutoModel:
        ctx = ctx or FitContext()
        if train is None or train.empty:
            raise DataError("model=auto: the training split is empty")
        budget = Budget(self.budget_minutes * 60.0, self.max_trials)
        with Stopwatch(budget, "validation"):
            tr, va, how = split_validation(train, valid)
            profile = DataProfile.of(tr)
            vocab = ItemVocab.from_events(tr)
            validset = ValidSet(va, vocab, self.metric, ctx.seed)
        if not validset.sample:
            raise DataError(
                "model=auto: validation has no session of two or more known items to score choices on; "
                "give it more data or pick a model (model=stan, model=gru)"
            )
        # Optuna is needed to search, not to serve the result: a loaded artifact never imports it
        from recframe.model.auto.search import KNN_CLASSES, KNNSearch, build

        search = KNNSearch([n for n in self.candidates if n in KNN_CLASSES], profile, validset, budget, ctx.seed)
        with Stopwatch(budget, "knn_search"):
            search.run(tr)
        best = search.ranking()[:KNN_IN_BLEND]
        pool: dict[str, Model] = {t.model: build(t.model, t.params, search.base) for t in best}
        # the blend scores each pooled kNN member once more on the sample (about twice what their
        # trials took), GRU4Rec too, and ranks the grid over the catalogue
        finish = 2.0 * sum(t.seconds for t in best) + blend_seconds(validset.targets, len(vocab))
        neural = self._neural(tr, va, profile, ctx, budget, validset, vocab, finish)
        if neural is not None:
            pool["gru"] = neural[0]
        if not pool:
            raise DataError("model=auto: every trial failed, so there is no model to choose (see the log)")
        log.info("model=auto: blending %s on %d validation targets", ", ".join(pool), validset.targets)
        with Stopwatch(budget, "blend"):
            points = fit_blend(pool, validset, neural={"gru"})
            chosen, best_single, why = choose(points)
        with Stopwatch(budget, "refit"):
            full = train_plus_valid(tr, va)
            members = {k: pool[k] for k in chosen.members}
            # kNN members alone can take every item of train plus validation; a trained GRU4Rec
            # knows train's items only, and a blend needs one vocabulary for all its members
            knn_only = all(k in KNN_CLASSES for k in members)
            shared = ItemVocab.from_events(full) if knn_only else shared_vocab(vocab, full)
            for key, member in members.items():
                if key in KNN_CLASSES:
                    refit_knn(member, full, shared)
                else:
                    member.vocab = shared
        normalize = {k: chosen.normalize[k] for k in members} if len(members) > 1 else {k: "none" for k in members}
        WeightedHybrid.__init__(self, members, {k: chosen.weights[k] for k in members}, normalize)
        self.vocab = shared
        self.search_log = {
            "metric": self.metric,
            "validation": {**how, **validset.describe()},
            "profile": profile.to_dict(),
            "trials": [t.to_dict() for t in search.trials],
            "gru": None if neural is None else neural[1],
            "blend": {"points": [p.to_dict() for p in points[:20]], "best_single": best_single.to_dict()},
            "winner": {
                "members": list(members),
                "weights": self.weights,
                "normalize": self.normalize,
                "params": {k: self._params(k, m) for k, m in members.items()},
                "score": chosen.score,
                "why": why,
            },
            "refit": {
                "knn_members_on": "train + validation" if any(k in KNN_CLASSES for k in members) else None,
                "events": int(len(full)),
            },
            "budget": budget.summary(),
        }
        log.info("model=auto: %s; seconds per stage %s", why, budget.stages)
        if ctx.work_dir is not None:
            atomic.write_json(ctx.work_dir / SEARCH_FILE, self.search_log)
        return self

    def _neural(
        self, tr: pd.DataFrame, va: pd.DataFrame, profile: Any, ctx: FitContext, budget: Budget, validset: ValidSet,
        vocab: ItemVocab, finish: float,
    ) -> tuple[Model, dict[str, Any]] | None:  # fmt: skip
        if "gru" not in self.candidates:
            return None
        seconds = None if budget.by_trials else budget.neural_seconds(finish)
        if seconds is not None and seconds < MIN_SECONDS:
            log.warning("model=auto: %.0fs left for GRU4Rec, under %.0fs: skipping it", seconds, MIN_SECONDS)
            return None
        with Stopwatch(budget, "gru"):
            model, info = fit_gru(tr, va, profile, ctx, self.max_epochs, seconds)
            if list(model.vocab.items) != list(vocab.items):
                raise RuntimeError("GRU4Rec built another item vocabulary than the kNN search")
            info["score"] = validset.score(model)
        return model, info

    @staticmethod
    def _params(key: str, member: Model) -> dict[str, Any]:
        if hasattr(member, "params"):
            return member.params()
        return member.hyperparameters() if hasattr(member, "hyperparameters") else {}

    # ---- artifact ---------------------------------------------------------------------------

    def get_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        config, tensors = super().get_state()
        config["auto"] = {"settings": self.settings(), "search": self.search_log}
        return config, tensors

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, Any], vocab: ItemVocab) -> AutoModel:
        hybrid = WeightedHybrid.from_state(config, tensors, vocab)
        auto = config.get("auto", {})
        model = cls(**auto.get("settings", {}))
        model.members, model.weights = hybrid.members, hybrid.weights
        model.normalize, model.seeds, model.vocab = hybrid.normalize, hybrid.seeds, vocab
        model.search_log = auto.get("search", {})
        return model
