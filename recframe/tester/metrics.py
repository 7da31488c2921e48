"""The ``metrics`` tester: full-ranking accuracy against the popularity baseline, plus gates.

It is the light tester (``tester=metrics``): one batched scoring pass over the test split, HR@K /
MRR@K / NDCG@K for every K, catalogue coverage and popularity bias, the same numbers for ``pop``
fitted on the same train split, and the deployment gates. The ``reclist`` tester adds behavioural
tests on top of exactly this computation (:func:`headline`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recframe import atomic
from recframe import validation as v
from recframe.interfaces import DataError, Dataset, Model, Tester, TestResult
from recframe.model.pop import PopModel
from recframe.tester import gates as gates_mod
from recframe.tester.scoring import (
    EncodedTest,
    ScoredTargets,
    beyond_accuracy,
    encode_test,
    fit_pop_baseline,
    flat_targets,
    score_any,
    score_baseline,
)
from recframe.tester.served import check_serving, gate_dicts, gate_view, seen_index, served_block
from recframe.vocab import ItemVocab

METRIC_FAMILIES = ("hr", "mrr", "ndcg", "coverage", "popbias")


def known_metrics(ks: Iterable[int]) -> set[str]:
    """Every metric name a tester built on :func:`headline` reports (what gates may refer to)."""
    return {f"{f}@{k}" for f in METRIC_FAMILIES for k in ks} | {"targets"}


def vocab_lookup(vocab: ItemVocab, reference: ItemVocab) -> np.ndarray:
    """For each item of ``vocab``, its index in ``reference`` (-1 when absent), matched by SKU."""
    return np.asarray([reference.index.get(str(s), -1) for s in vocab.items], dtype=np.int64)


def popularity_for(lookup: np.ndarray, reference: ItemVocab) -> np.ndarray:
    """Training counts of a model's items, taken from the baseline's vocabulary via ``lookup``.

    Popularity bias must use one definition of popularity for every model, whatever counts (if any)
    a model stored in its own vocabulary.
    """
    counts = reference.counts.astype(np.float64)
    return np.where(lookup >= 0, counts[np.maximum(lookup, 0)], 0.0)


def pop_ranks_for(targets: np.ndarray, lookup: np.ndarray, reference: ItemVocab) -> np.ndarray:
    """The popularity baseline's conservative rank of each of a model's targets.

    Slices compare model and baseline on exactly the same targets even when the two vocabularies
    differ; a target the baseline never saw ranks after every item it knows.
    """
    scores = reference.popularity()
    n = len(scores)
    item_rank = n - np.searchsorted(np.sort(scores), scores, side="left")
    idx = lookup[targets]
    return np.where(idx >= 0, item_rank[np.maximum(idx, 0)], n + 1).astype(np.int64)


@dataclass
class Headline:
    """Everything the headline computation produced, kept for the behavioural tests."""

    model_name: str
    metrics: dict[str, float]
    baseline: dict[str, float]
    scored: ScoredTargets
    enc: EncodedTest
    pop: PopModel
    pop_scored: ScoredTargets
    pop_enc: EncodedTest
    popularity: np.ndarray  # train counts over the model's vocabulary
    model_items: np.ndarray  # the model's SKUs, by index
    pop_ranks: np.ndarray  # the baseline's rank of each of the model's targets (aligned with scored)
    seconds: float
    #: the metrics under the endpoint's ranking settings (:mod:`recframe.tester.served`); None = not asked
    served: dict[str, Any] | None = None

    def to_metrics_json(self) -> dict[str, Any]:
        """The layout of ``metrics.json``: model name, the model's metrics, ``baseline_pop``, ``served``."""
        out = {"model": self.model_name, **self.metrics, "baseline_pop": dict(self.baseline)}
        if self.served is not None:
            out["served"] = self.served
        return out


def headline(
    model: Model,
    data: Dataset,
    ks: Iterable[int],
    batch_size: int = 512,
    serving: Mapping[str, Any] | None = None,
) -> Headline:
    """Score ``model`` and the popularity baseline on ``data.test`` with identical protocol.

    With ``serving`` (the endpoint's settings, :func:`recframe.tester.served.serving_settings`) both
    are also ranked as the endpoint ranks them, into :attr:`Headline.served`.
    """
    if getattr(model, "vocab", None) is None:
        raise DataError("the model has no item vocabulary: it was not fitted (run the 'train' step first)")
    ks = sorted(set(ks))
    kmax = max(ks)
    t0 = time.perf_counter()
    enc = encode_test(data.test, model.vocab)
    if not enc.sessions:
        raise DataError("the test split has no session with two items known to the model: nothing to evaluate")
    exclude = bool(serving and serving.get("exclude_seen"))
    scored = score_any(model, enc, kmax, batch_size, seen_index(enc.sessions) if exclude else None)
    expected = flat_targets(enc.sessions)
    if len(scored.targets) != len(expected) or not np.array_equal(scored.targets, expected):
        raise DataError(
            f"model {model.name!r}: score_prefixes must yield targets in session order "
            f"(got {len(scored.targets)} targets, expected {len(expected)})"
        )
    scored = scored.select(enc.target_mask())  # `datasource.split.targets: last` keeps sessions' last items
    pop = fit_pop_baseline(data.train)
    pop_scored, pop_enc = score_baseline(pop, data.test, kmax)
    lookup = vocab_lookup(model.vocab, pop.vocab)
    popularity = popularity_for(lookup, pop.vocab)
    metrics = _accuracy(scored, popularity, ks)
    base = _accuracy(pop_scored, pop.vocab.popularity(), ks)
    served = None
    if serving is not None:
        served = {**metrics, "baseline_pop": dict(base)}  # exclude_seen off: the endpoint ranks as the protocol
        if exclude:
            pop_served = score_any(pop, pop_enc, kmax, batch_size, seen_index(pop_enc.sessions)).extra["served"]
            served = {
                **_accuracy(scored.extra["served"].select(enc.target_mask()), popularity, ks),
                "baseline_pop": _accuracy(pop_served.select(pop_enc.target_mask()), pop.vocab.popularity(), ks),
            }
        served = served_block(served, serving)
    return Headline(
        model_name=str(getattr(model, "name", type(model).__name__)),
        metrics=metrics,
        baseline=base,
        scored=scored,
        enc=enc,
        pop=pop,
        pop_scored=pop_scored,
        pop_enc=pop_enc,
        popularity=popularity,
        model_items=np.asarray(model.vocab.items, dtype=object),
        pop_ranks=pop_ranks_for(scored.targets, lookup, pop.vocab),
        seconds=time.perf_counter() - t0,
        served=served,
    )


def _accuracy(scored: ScoredTargets, popularity: np.ndarray, ks: Iterable[int]) -> dict[str, Any]:
    return {**scored.metrics(ks), **beyond_accuracy(scored, popularity, ks), "targets": int(len(scored.ranks))}


def validate_common(k: Any, ks: Any, batch_size: Any) -> tuple[int, list[int], int]:
    """Shared constructor checks of the testers (``tester.k``, ``tester.ks``, ``tester.batch_size``)."""
    k = v.integer("tester.k", k, 1)
    ks_list = v.int_list("tester.ks", ks, 1)
    batch_size = v.integer("tester.batch_size", batch_size, 1)
    return k, sorted(set(ks_list) | {k}), batch_size


class MetricsTester(Tester):
    """Accuracy (HR/MRR/NDCG@K), coverage and popularity bias vs ``pop``, then the gates.

    Args:
        k: the headline cut-off (``hr@k`` etc. in the summary); always added to ``ks``.
        ks: every cut-off to report.
        gates: ``{metric: "OP NUMBER [* baseline_pop]"}``; see :mod:`recframe.tester.gates`.
        batch_size: prefixes scored per batch (memory is ``batch_size x n_items`` floats).
        html: also write ``report/index.html`` (the run report).
        serving: the endpoint's ranking settings (``{"exclude_seen": bool}``); the pipeline sets it
            from the deployer group. When given, ``metrics.json`` gets a ``served`` block and the
            gates judge it (:mod:`recframe.tester.served`); None = headline only.
    """

    name = "metrics"

    def __init__(
        self,
        k: int = 20,
        ks: Iterable[int] = (1, 5, 10, 20),
        gates: Mapping[str, str] | None = None,
        batch_size: int = 512,
        html: bool = True,
        serving: Mapping[str, Any] | None = None,
    ) -> None:
        self.k, self.ks, self.batch_size = validate_common(k, ks, batch_size)
        self.gates = gates_mod.parse_gates(gates, "tester.gates", known_metrics(self.ks))
        self.html = v.boolean("tester.html", html)
        self.serving = check_serving(serving)

    def run(self, model: Model, data: Dataset, out_dir: Path) -> TestResult:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        h = headline(model, data, self.ks, self.batch_size, self.serving)
        metrics = h.to_metrics_json()
        verdicts, failures = gates_mod.check_gates(self.gates, gate_view(metrics))
        report = {
            "metadata": {"tester": self.name, "model_name": h.model_name, "k": self.k, "ks": self.ks},
            "metrics": metrics,
            "gates": gate_dicts(verdicts, metrics),
            "passed": not failures,
            "timings": {"metrics_s": round(h.seconds, 3)},
        }
        atomic.write_json(out_dir / "report.json", report)
        result = TestResult(metrics=metrics, report=report, passed=not failures, failures=failures)
        if self.html:
            from recframe.report import write_report

            write_report(out_dir.parent, result)
        return result
