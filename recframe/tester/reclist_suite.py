"""The RecList behavioural suite behind ``tester=reclist``, deployment gates, and the run report.

The suite is a real :class:`reclist.reclist.RecList` subclass: its tests are ``@rec_test`` methods
whose docstrings are their descriptions, it runs through ``RecList.__call__``, it keeps RecList's
``report.json`` layout (``metadata`` + ``data`` = one entry per test) and writes through RecList's
local metadata store, and it logs through a RecList Comet logger when the run has a Comet tracker.

What it does *not* use is reclist's metric code: in 2.1.0 ``coverage_at_k`` takes the first k rows
instead of each row's top k, ``popularity_bias_at_k`` divides by the wrong length, and several metric
modules do not import at all. Every number comes from :mod:`recframe.tester.scoring` and
:mod:`recframe.tester.behaviour`, on one batched scoring pass over the test split.
"""

from __future__ import annotations

import datetime
import logging
import math
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from reclist.charts import CHART_TYPE
from reclist.logs import LOGGER, CometLogger, LocalLogger, RecLogger
from reclist.metadata import METADATA_STORE
from reclist.reclist import RecList, rec_test

from recframe import validation as v
from recframe.interfaces import ConfigError, Dataset, Model, Tester, TestResult
from recframe.report.svg import bar_chart
from recframe.tester import behaviour
from recframe.tester import gates as gates_mod
from recframe.tester.metrics import Headline, headline, known_metrics, validate_common
from recframe.tester.served import check_serving, gate_dicts, gate_view

log = logging.getLogger("recframe.tester")

PERTURBATIONS = ("shuffle", "drop_one", "replace_last_same_category")


def to_jsonable(obj: Any) -> Any:
    """Native Python types only: reclist's store calls ``json.dump``, which rejects numpy scalars,
    and NaN is not valid JSON for browsers, so it becomes null."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(x) for k, x in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(x) for x in obj]
    if isinstance(obj, np.ndarray):
        return [to_jsonable(x) for x in obj.tolist()]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def flatten_numbers(prefix: str, value: Any) -> Iterator[tuple[str, float]]:
    """``("a/b/c", 0.3)`` for every numeric leaf of a nested result (what a metrics tracker can log)."""
    if isinstance(value, (bool, int, float)) and math.isfinite(float(value)):
        yield prefix, float(value)
    elif isinstance(value, Mapping):
        for k, x in value.items():
            yield from flatten_numbers(f"{prefix}/{k}", x)


class SvgFigure:
    """Stands in for a matplotlib figure in RecList's plot hooks: ``savefig`` writes SVG text."""

    def __init__(self, svg: str) -> None:
        self.svg = svg

    def savefig(self, path: str | Path, *args: Any, **kwargs: Any) -> None:
        Path(path).write_text(self.svg)


class QuietLocalLogger(LocalLogger):
    """RecList's local logger prints every raw result to the console; the pipeline has its own
    progress display, so results go to the ``recframe.tester`` log at debug level instead."""

    def write(self, label: str, value: Any) -> None:
        log.debug("reclist %s: %s", label, value)


class TrackerCometLogger(CometLogger):
    """RecList's Comet logger, bound to the experiment of the run's Comet tracker.

    reclist's own ``CometLogger.__init__`` opens a new *online* ``Experiment`` from environment keys;
    recframe's tracker already owns the run's experiment (online, or offline with no key), so this
    subclass takes that experiment instead. It logs every numeric leaf of a result (the parent logs
    only bare floats, which would drop every dict-valued test) and uploads plots as SVG assets.
    """

    def __init__(self, experiment: Any) -> None:
        RecLogger.__init__(self)
        self.experiment = experiment

    def write(self, label: str, value: Any) -> None:
        for key, number in flatten_numbers(f"reclist/{label}", value):
            self.experiment.log_metric(key, number)

    def save_plot(self, name: str, fig: Any, *args: Any, **kwargs: Any) -> None:
        svg = getattr(fig, "svg", None)
        if svg is not None:
            self.experiment.log_asset_data(svg, name=f"reclist/{name}.svg")


def comet_experiment(tracker: Any) -> Any:
    """The comet_ml experiment behind a tracker, if it has one (duck-typed: no comet import here)."""
    for attr in ("experiment", "_experiment", "exp"):
        exp = getattr(tracker, attr, None) if tracker is not None else None
        if exp is not None and type(exp).__module__.split(".")[0] == "comet_ml":
            return exp
    return None


class RecframeSuite(RecList):
    """The behavioural suite of one model on one dataset (built per run by :class:`ReclistTester`).

    The expensive scoring pass happens once, in :meth:`prepare`; the ``@rec_test`` methods read from it
    (accuracy, coverage, slices) or make bounded extra calls on a seeded sample (perturbations, "less
    wrong", invariants).
    """

    def __init__(
        self,
        model: Model,
        data: Dataset,
        out_dir: Path,
        ks: list[int],
        k: int,
        n_samples: int = 1000,
        seed: int = 42,
        batch_size: int = 512,
        exclude_seen: bool = False,
        logger_service: RecLogger | None = None,
        verbose: bool = False,
        serving: Mapping[str, Any] | None = None,
    ) -> None:
        self._serving = serving
        self._model, self._data, self._out_dir = model, data, Path(out_dir)
        self._ks, self._k, self._n_samples, self._seed = ks, k, n_samples, seed
        self._batch_size, self._exclude_seen, self._verbose = batch_size, exclude_seen, verbose
        self._h: Headline | None = None
        self._results: dict[str, Any] = {}
        self.timings: dict[str, float] = {}
        self.report: dict[str, Any] = {}
        super().__init__(
            model_name=str(getattr(model, "name", type(model).__name__)),
            logger=LOGGER.LOCAL,
            metadata_store=METADATA_STORE.LOCAL,
        )
        if logger_service is not None:
            self.logger_service = logger_service
            self.logger = LOGGER.COMET if isinstance(logger_service, CometLogger) else LOGGER.LOCAL

    # ---------------------------------------------------------------- RecList hooks
    def create_data_store(self) -> str:
        """RecList's store, rooted at the run's ``report/`` (not ``.reclist/<suite>/<model>/<ms>``),
        so the pipeline finds ``report/report.json`` and the plots beside it."""
        (self._out_dir / "plots").mkdir(parents=True, exist_ok=True)
        return str(self._out_dir)

    def _dump_results_to_json(self, test_results: list, report_path: str) -> str:
        """RecList's report layout (``metadata`` + ``data``), written at ``report/report.json``."""
        report = {
            "metadata": {
                "finish_time": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
                "model_name": self.model_name,
                "reclist": self.name,
                "tests": list(self._rec_tests.keys()),
            },
            "data": test_results,
            **self.report,
        }
        self.report = to_jsonable(report)
        path = str(Path(report_path) / "report.json")
        self.metadata_store_service.write_file(path, self.report, is_json=True)
        return path

    def _generate_plots(self, test_results: list) -> dict[str, SvgFigure]:
        """SVG charts instead of matplotlib (which reclist pins to a numpy-1-only version)."""
        figs: dict[str, SvgFigure] = {}
        for res in test_results:
            svg = charts_for(res["name"], res["result"], self._k)
            if svg:
                figs[res["name"]] = SvgFigure(svg)
        return figs

    def _generate_report_and_plot(self, test_results: list, meta_store_path: str) -> dict[str, SvgFigure]:
        self._dump_results_to_json(test_results, meta_store_path)
        figs = self._generate_plots(test_results)
        for name, fig in figs.items():
            fig.savefig(Path(meta_store_path) / "plots" / f"{name}.svg")
        return figs

    def _display_rich_table(self, table_name: str, results: list) -> None:
        """A compact table (RecList's dumps every nested result) and only when asked for."""
        if not self._verbose:
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{table_name}: {self.model_name}")
        table.add_column("test")
        table.add_column("summary")
        for res in results:
            table.add_row(res["name"], summarise(res["name"], res["result"], self._k))
        Console().print(table)

    # ---------------------------------------------------------------- the shared pass
    def prepare(self) -> Headline:
        """Score the model and the popularity baseline once (the cost of the whole suite)."""
        if self._h is None:
            self._h = headline(self._model, self._data, self._ks, self._batch_size, self._serving)
            self.timings["metrics_s"] = round(self._h.seconds, 3)
        return self._h

    @contextmanager
    def _timed(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        self.timings[f"{name}_s"] = round(time.perf_counter() - t0, 3)

    # ---------------------------------------------------------------- the tests
    @rec_test(test_type="accuracy", display_type=CHART_TYPE.BARS)
    def accuracy(self) -> dict[str, Any]:
        """HR@K (= Recall@K), MRR@K and NDCG@K ranked over all items (ties count against the target),
        next item at every test position, with the popularity baseline on the same split beside each."""
        h = self.prepare()
        out = {}
        for k in self._ks:
            for f in ("hr", "mrr", "ndcg"):
                key = f"{f}@{k}"
                out[key] = {"model": h.metrics[key], "pop": h.baseline[key]}
        return to_jsonable(out)

    @rec_test(test_type="beyond_accuracy", display_type=CHART_TYPE.BARS)
    def beyond_accuracy(self) -> dict[str, Any]:
        """Catalogue coverage@K (share of items in at least one row's top K) and popularity bias@K
        (mean over rows of the mean normalised training popularity of the row's top K), model vs pop."""
        h = self.prepare()
        out = {}
        for k in self._ks:
            for f in ("coverage", "popbias"):
                key = f"{f}@{k}"
                out[key] = {"model": h.metrics[key], "pop": h.baseline[key]}
        return to_jsonable(out)

    @rec_test(test_type="slices", display_type=CHART_TYPE.BARS)
    def slices(self) -> dict[str, Any]:
        """HR@K and MRR@K of model and pop by prefix length, by target popularity (head: items holding
        the first 50% of training events, torso: up to 80%, tail: the rest), by target category and by
        the action of the last event before the target."""
        h = self.prepare()
        with self._timed("slices"):
            out = behaviour.slices(h, self._data, self._k)
        return to_jsonable(out)

    @rec_test(test_type="perturbations", display_type=CHART_TYPE.BARS)
    def perturbations(self) -> dict[str, Any]:
        """Shuffle the session, drop one item, replace the last item by another of its category: top-K
        Jaccard overlap with the unperturbed list and HR/MRR change, on a seeded sample of prefixes."""
        h = self.prepare()
        with self._timed("perturbations"):
            out = behaviour.perturbations(
                self._model, h, self._data, self._k, self._n_samples, self._seed, self._batch_size
            )
        return to_jsonable(out)

    @rec_test(test_type="less_wrong", display_type=CHART_TYPE.SCALAR)
    def less_wrong(self) -> dict[str, Any]:
        """For misses, the similarity of the top-1 item to the true item (item embeddings when the model
        has them, training co-occurrence always) against a random item: lift > 0 is less wrong than chance."""
        h = self.prepare()
        with self._timed("less_wrong"):
            out = behaviour.less_wrong(self._model, h, self._data, self._k, self._n_samples, self._seed)
        return to_jsonable(out)

    @rec_test(test_type="invariants", display_type=CHART_TYPE.SCALAR)
    def invariants(self) -> dict[str, Any]:
        """No padding or unknown items and finite scores; no items already in the session when
        exclude_seen; identical output for identical input; a session scores the same alone or in a batch."""
        h = self.prepare()
        with self._timed("invariants"):
            out = behaviour.invariants(
                self._model, h, self._k, self._exclude_seen, min(self._n_samples, 512), self._seed, self._batch_size
            )
        return to_jsonable(out)

    # ---------------------------------------------------------------- after the run
    def result_of(self, name: str) -> Any:
        for res in self._test_results:
            if res["name"] == name:
                return res["result"]
        return None


def behavioural_metrics(suite: RecframeSuite, k: int) -> dict[str, float]:
    """Scalars from the behavioural tests that gates and the leaderboard can use."""
    out: dict[str, float] = {}
    pert = suite.result_of("perturbations") or {}
    for name in PERTURBATIONS:
        val = pert.get(name, {}).get(f"jaccard@{k}")
        if val is not None:
            out[f"{name}_jaccard@{k}"] = float(val)
    lw = suite.result_of("less_wrong") or {}
    for space in ("cooccurrence", "embedding"):
        val = lw.get(space, {}).get("lift") if isinstance(lw.get(space), Mapping) else None
        if val is not None:
            out[f"less_wrong_{space}_lift"] = float(val)
    inv = suite.result_of("invariants") or {}
    if inv:
        out["invariants_passed"] = float(all(x.get("passed", True) for x in inv.values()))
    return out


def behavioural_metric_names(k: int) -> set[str]:
    names = {f"{p}_jaccard@{k}" for p in PERTURBATIONS}
    return names | {"less_wrong_cooccurrence_lift", "less_wrong_embedding_lift", "invariants_passed"}


def charts_for(name: str, result: Any, k: int) -> str | None:
    """The SVG chart of one test's result (None when it has nothing to plot)."""
    if not isinstance(result, Mapping):
        return None
    if name in ("accuracy", "beyond_accuracy"):
        keys = [m for m in result if m.endswith(f"@{k}")] or list(result)
        return bar_chart(
            keys,
            {"model": [result[m]["model"] for m in keys], "pop": [result[m]["pop"] for m in keys]},
            title=f"{name} @{k}",
        )
    if name == "slices":
        parts = []
        for dim, table in result.items():
            if not isinstance(table, Mapping) or "skipped" in table:
                continue
            groups = list(table)
            parts.append(
                bar_chart(
                    groups,
                    {"model": [table[g][f"hr@{k}"] for g in groups], "pop": [table[g][f"pop_hr@{k}"] for g in groups]},
                    title=f"HR@{k} by {dim}",
                )
            )
        return "".join(parts) or None
    if name == "perturbations":
        names = [p for p in PERTURBATIONS if isinstance(result.get(p), Mapping) and "skipped" not in result[p]]
        if not names:
            return None
        return bar_chart(
            names,
            {
                f"jaccard@{k}": [result[p][f"jaccard@{k}"] for p in names],
                f"hr@{k}": [result[p][f"hr@{k}"] for p in names],
                f"hr@{k} perturbed": [result[p][f"hr@{k}_perturbed"] for p in names],
            },
            title="perturbations",
        )
    return None


def summarise(name: str, result: Any, k: int) -> str:
    """One line per test for the console table."""
    if not isinstance(result, Mapping):
        return str(result)
    if name in ("accuracy", "beyond_accuracy"):
        return ", ".join(f"{m} {r['model']:.4f} (pop {r['pop']:.4f})" for m, r in result.items() if m.endswith(f"@{k}"))
    if name == "invariants":
        return ", ".join(f"{n}: {'ok' if r.get('passed') else 'FAILED'}" for n, r in result.items())
    if name == "perturbations":
        return ", ".join(
            f"{p} J@{k} {result[p][f'jaccard@{k}']:.3f}"
            for p in PERTURBATIONS
            if isinstance(result.get(p), Mapping) and f"jaccard@{k}" in result[p]
        )
    if name == "less_wrong":
        co = result.get("cooccurrence", {})
        return f"co-occurrence lift {co.get('lift', float('nan')):.4f}" if co else str(result.get("skipped", ""))
    return ", ".join(result)[:80]


class ReclistTester(Tester):
    """The default tester: RecList behavioural suite + gates + the HTML run report.

    Args:
        k: the cut-off of the behavioural tests and the headline; always added to ``ks``.
        ks: cut-offs of the accuracy and beyond-accuracy tests.
        gates: ``{metric: "OP NUMBER [* baseline_pop]"}`` (see :mod:`recframe.tester.gates`); metrics are
            the accuracy ones (``hr@20``, ``coverage@20``, ...) and the behavioural scalars
            (``shuffle_jaccard@20``, ``less_wrong_cooccurrence_lift``, ``invariants_passed``, ...).
        n_samples: prefixes sampled for perturbations and "less wrong" (invariants use up to 512).
        seed: the sampling seed (same seed, same sample, comparable runs).
        batch_size: prefixes scored per batch.
        exclude_seen: whether top-K lists must not repeat session items; None follows the model's
            own ``exclude_seen`` attribute (False when it has none).
        fail_on_invariants: a failed invariant fails the run (blocks deploy) like a failed gate.
        logger: ``auto`` (Comet when the tracker has a Comet experiment), ``local`` or ``comet``.
        tracker: the run's tracker (the pipeline passes it); only used for the Comet logger.
        html: write ``report/index.html``.
        verbose: print a compact result table at the end.
        serving: the endpoint's ranking settings (the pipeline sets them from the deployer group);
            when given, ``metrics.json`` gets a ``served`` block and the accuracy gates judge it
            (:mod:`recframe.tester.served`). Behavioural gates read the headline suite.
    """

    name = "reclist"

    def __init__(
        self,
        k: int = 20,
        ks: Iterable[int] = (1, 5, 10, 20),
        gates: Mapping[str, str] | None = None,
        n_samples: int = 1000,
        seed: int = 42,
        batch_size: int = 512,
        exclude_seen: bool | None = None,
        fail_on_invariants: bool = True,
        logger: str = "auto",
        tracker: Any = None,
        html: bool = True,
        verbose: bool = False,
        serving: Mapping[str, Any] | None = None,
    ) -> None:
        self.serving = check_serving(serving)
        self.k, self.ks, self.batch_size = validate_common(k, ks, batch_size)
        known = known_metrics(self.ks) | behavioural_metric_names(self.k)
        self.gates = gates_mod.parse_gates(gates, "tester.gates", known)
        self.n_samples = v.integer("tester.n_samples", n_samples, 1)
        self.seed = v.integer("tester.seed", seed, 0)
        self.exclude_seen = None if exclude_seen is None else v.boolean("tester.exclude_seen", exclude_seen)
        self.fail_on_invariants = v.boolean("tester.fail_on_invariants", fail_on_invariants)
        self.logger = v.choice("tester.logger", logger, ("auto", "local", "comet"))
        self.tracker = tracker
        self.html = v.boolean("tester.html", html)
        self.verbose = v.boolean("tester.verbose", verbose)

    def _logger_service(self) -> RecLogger:
        exp = comet_experiment(self.tracker)
        if self.logger == "comet" and exp is None:
            raise ConfigError("tester.logger", "comet", "needs a Comet tracker (tracker=comet)")
        if exp is not None and self.logger != "local":
            return TrackerCometLogger(exp)
        return QuietLocalLogger()

    def suite(self, model: Model, data: Dataset, out_dir: Path) -> RecframeSuite:
        """The RecList suite for one run (exposed so a notebook can run or extend it directly)."""
        exclude = self.exclude_seen if self.exclude_seen is not None else bool(getattr(model, "exclude_seen", False))
        return RecframeSuite(
            model,
            data,
            Path(out_dir),
            ks=self.ks,
            k=self.k,
            n_samples=self.n_samples,
            seed=self.seed,
            batch_size=self.batch_size,
            exclude_seen=exclude,
            logger_service=self._logger_service(),
            verbose=self.verbose,
            serving=self.serving,
        )

    def run(self, model: Model, data: Dataset, out_dir: Path) -> TestResult:
        out_dir = Path(out_dir)
        t0 = time.perf_counter()
        suite = self.suite(model, data, out_dir)
        h = suite.prepare()
        suite.report = {"settings": self._settings(suite)}
        suite()  # RecList runs every @rec_test, logs, writes report.json and the plots
        metrics = h.to_metrics_json()
        metrics.update(behavioural_metrics(suite, self.k))
        verdicts, failures = gates_mod.check_gates(self.gates, gate_view(metrics))
        inv = suite.result_of("invariants") or {}
        failed_inv = [n for n, r in inv.items() if isinstance(r, Mapping) and not r.get("passed", True)]
        if self.fail_on_invariants:
            failures += [f"invariant {n} FAILED: {_inv_detail(inv[n])}" for n in failed_inv]
        suite.timings["suite_s"] = round(time.perf_counter() - t0, 3)
        extra = {
            "metrics": metrics,
            "gates": gate_dicts(verdicts, metrics),
            "invariants_failed": failed_inv,
            "passed": not failures,
            "failures": failures,
            "timings": suite.timings,
            "dataset": {
                "stats": data.stats,
                "test_targets": int(len(h.scored.ranks)),
                "test_unknown_events": h.enc.unknown_events,
                "catalogue_items": int(len(h.model_items)),
            },
        }
        report = to_jsonable({**suite.report, **extra})
        suite.metadata_store_service.write_file(str(out_dir / "report.json"), report, is_json=True)
        result = TestResult(metrics=to_jsonable(metrics), report=report, passed=not failures, failures=failures)
        if self.html:
            from recframe.report import write_report

            write_report(out_dir.parent, result)
        return result

    def _settings(self, suite: RecframeSuite) -> dict[str, Any]:
        return {
            "tester": self.name,
            "k": self.k,
            "ks": self.ks,
            "n_samples": self.n_samples,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "exclude_seen": suite._exclude_seen,
            "fail_on_invariants": self.fail_on_invariants,
            "logger": type(suite.logger_service).__name__,
            "gates": {g.metric: g.expr for g in self.gates},
        }


def _inv_detail(r: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in r.items() if k != "passed")
