"""The four steps (data, train, test, deploy) and the run-directory contract.

The pipeline knows nothing about Hydra: it receives ready components and a run directory, so it runs
the same from the CLI, from Python, in a sweep, or in a test. Each step leaves its output in the run
directory, and a step that is skipped reads what an earlier run left there (``resume_from``), which
is what makes ``steps=[test,deploy] run.resume_from=PATH`` work.

Run directory::

    data/            dataset manifest + parquet splits (+ dbt lineage)
    train/           checkpoints and per-epoch metrics of neural models
    model/           the artifact: model.json, vocab.json, weights.pt, checksums.json
    report/          report.json, index.html
    metrics.json     headline metrics (model, hr@20, mrr@20, ndcg@20, baseline_pop) and ``served``
    gates.json       the tester's deployment verdict
    deploy.json      endpoint url and smoke-test result
"""

from __future__ import annotations

import errno
import json
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recframe import atomic
from recframe.ddp import is_rank_zero
from recframe.interfaces import (
    DataError,
    Dataset,
    DataSource,
    Deployer,
    Deployment,
    FitContext,
    GateError,
    Model,
    OutputError,
    RecframeError,
    Tester,
    TestResult,
    Tracker,
)

log = logging.getLogger("recframe")

#: under the run's ``train/``: the model keys left at ``auto`` and the values fit scaled them to
SCALED_PARAMS = "scaled_params.json"

STEPS = ("data", "train", "test", "score", "deploy")
# what runs when no steps are given: ``score`` writes to the warehouse, so it is opt-in
DEFAULT_STEPS = ("data", "train", "test", "deploy")


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically: a reader never sees a half-written file (nor a stray temp file)."""
    atomic.write_json(path, obj, default=_default)


_WRITE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS}
_WRITE_MESSAGES = ("No space left on device", "File too large", "Disk quota exceeded", "Read-only file system")


def output_error(e: BaseException, step: str, run_dir: Path) -> OutputError | None:
    """A one-line :class:`OutputError` for a write that failed for lack of room, else None."""
    text = str(e)
    if not (getattr(e, "errno", None) in _WRITE_ERRNOS or any(m in text for m in _WRITE_MESSAGES)):
        return None
    reason = getattr(e, "strerror", None) or next((m for m in _WRITE_MESSAGES if m in text), text)
    where = getattr(e, "filename", None) or run_dir
    return OutputError(
        f"the {step} step could not write {where}: {reason}; nothing half-written was kept as a result. "
        "Free space, or set hydra.run.dir to a directory with room"
    )


def _default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


@dataclass
class RunResult:
    """What a finished run returns to Python callers (the CLI prints it as the summary)."""

    run_dir: Path
    steps: list[str]
    timings: dict[str, float] = field(default_factory=dict)
    data_stats: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    deployment: dict[str, Any] | None = None
    gates: dict[str, Any] | None = None


class Pipeline:
    """Runs the selected steps over ready-made components.

    ``on_step`` is called with ``(step, "start"|"end", seconds)`` so a front end can show progress
    without the pipeline depending on it.
    """

    def __init__(
        self,
        datasource: DataSource | None,
        model: Model | None,
        tester: Tester | None,
        deployer: Deployer | None,
        run_dir: str | Path,
        tracker: Tracker | None = None,
        trainer: dict[str, Any] | None = None,
        steps: Sequence[str] = DEFAULT_STEPS,
        resume_from: str | Path | None = None,
        seed: int = 42,
        progress: bool = True,
        params: dict[str, Any] | None = None,
        on_step: Callable[[str, str, float], None] | None = None,
    ) -> None:
        unknown = [s for s in steps if s not in STEPS]
        if unknown:
            from recframe.interfaces import ConfigError

            raise ConfigError("steps", list(steps), f"each step must be one of {', '.join(STEPS)}")
        self.steps = [s for s in STEPS if s in steps]  # always run in pipeline order
        self.datasource, self.model, self.tester, self.deployer = datasource, model, tester, deployer
        self.tracker = tracker
        self.trainer = dict(trainer or {})
        self.run_dir = Path(run_dir)
        self.resume_from = Path(resume_from) if resume_from else None
        self.seed = seed
        self.progress = progress
        self.params = params or {}
        self.on_step = on_step
        self._dataset: Dataset | None = None
        self._model: Model | None = None
        self._test: TestResult | None = None
        # called with (pipeline, result) once the steps are done, before serving and the tracker's
        # close (recframe.production attaches the run record and the model registry here)
        self.finishers: list[Callable[[Pipeline, RunResult], None]] = []
        self.score_settings: Any = None

    # ---------------------------------------------------------------- inputs of skipped steps
    def _source(self, sub: str) -> Path:
        """Where a skipped step's output is read from: this run if it has it, else ``resume_from``."""
        here = self.run_dir / sub
        if here.exists() or self.resume_from is None:
            return here
        return self.resume_from / sub

    def dataset(self) -> Dataset:
        if self._dataset is None:
            self._dataset = Dataset.load(self._source("data"))
        return self._dataset

    def fitted_model(self) -> Model:
        if self._model is None:
            self._model = Model.load(self._source("model"))
        return self._model

    # ---------------------------------------------------------------- steps
    def step_data(self) -> None:
        data_dir = self.run_dir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        with self._warehouse_lock():
            ds = self.datasource.load(data_dir)
        for name in ("train", "test"):
            if getattr(ds, name).empty:
                raise DataError(f"the {name} split is empty: widen the date window or lower the minimum session length")
        ds.save(data_dir)
        self._dataset = ds

    def _warehouse_lock(self) -> Any:
        """Concurrent runs on one local warehouse file (DuckDB) take turns for the data step."""
        from contextlib import nullcontext

        wh = getattr(self.datasource, "warehouse", None)
        if not isinstance(wh, Path):  # e.g. a Snowflake warehouse *name*: the server arbitrates
            return nullcontext()
        from recframe.datasource.warehouse import warehouse_lock

        return warehouse_lock(wh)

    def step_train(self) -> None:
        if self.trainer.get("sagemaker") is not None:  # trainer=sagemaker: the fit runs as a training job
            from recframe.remote.sagemaker_job import SageMakerTrainer

            self.dataset()  # the splits must exist before anything is uploaded
            SageMakerTrainer(self.trainer["sagemaker"]).train(
                self.model, self._source("data"), self.trainer, self.run_dir, self.seed
            )
            self._model = Model.load(self.run_dir / "model")
            return
        ds = self.dataset()
        ctx = FitContext(
            trainer=self.trainer,
            work_dir=self.run_dir / "train",
            logger=self.tracker.lightning_logger() if self.tracker else None,
            seed=self.seed,
            progress=self.progress,
        )
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        self.model.fit(ds.train, ds.valid, ctx)
        self._track_scaled_params()
        self.model.save(self.run_dir / "model")
        self._model = self.model

    def _track_scaled_params(self) -> None:
        """Log (and track) the parameters the model scaled to the data: keys left at ``auto``."""
        from recframe.model.scaling import describe, scaled_params

        scaled = scaled_params(self.model)
        if not scaled:
            return
        log.info("parameters scaled to the training data: %s", describe(scaled))
        write_json(self.run_dir / "train" / SCALED_PARAMS, scaled)  # the report's "Run configuration" shows it
        if self.tracker:  # beside the config's "auto" (trackers keep a param's first value), in full
            self.tracker.log_params({**self.params, **{f"scaled.{k}": str(v) for k, v in scaled.items()}})

    def _join_ddp_fit(self) -> None:
        """A DDP rank > 0 (a copy of the command, started by rank 0's trainer): train, then exit.

        Rank 0 has already written the data step's splits to the shared run directory, and it alone
        saves the artifact, tests, deploys and reports; this process only lends its share of the fit.
        """
        ds = self.dataset()
        ctx = FitContext(trainer=self.trainer, work_dir=self.run_dir / "train", seed=self.seed, progress=False)
        self.model.fit(ds.train, ds.valid, ctx)
        raise SystemExit(0)

    def step_test(self) -> None:
        result = self.tester.run(self.fitted_model(), self.dataset(), self.run_dir / "report")
        self._test = result
        result.metrics.update(self._validation_metrics())
        write_json(self.run_dir / "metrics.json", result.metrics)
        write_json(self.run_dir / "gates.json", {"passed": result.passed, "failures": result.failures})
        if self.tracker:
            numeric = {k: float(v) for k, v in result.metrics.items() if isinstance(v, (int, float))}
            self.tracker.log_metrics(numeric)

    def _validation_metrics(self) -> dict[str, float]:
        """MRR@20/HR@20 on the validation split, for every model alike: what sweeps optimise, so
        that hyperparameters are never chosen on the test split."""
        from recframe.evaluation import evaluate

        valid = self.dataset().valid
        if valid.empty:
            return {}
        m = evaluate(self.fitted_model(), valid, ks=(20,))
        return {"val_mrr@20": m["mrr@20"], "val_hr@20": m["hr@20"]} if m["targets"] else {}

    def step_score(self) -> None:
        """Batch recommendations into the warehouse (see :mod:`recframe.score`)."""
        from recframe.production import score_step

        score_step(self)

    def _gate_verdict(self) -> dict[str, Any] | None:
        if self._test is not None:
            return {"passed": self._test.passed, "failures": self._test.failures}
        path = self._source("gates.json")
        return json.loads(path.read_text()) if path.exists() else None

    def step_deploy(self) -> Deployment:
        verdict = self._gate_verdict() if getattr(self.deployer, "serves", True) else None
        if verdict and not verdict["passed"]:
            failures = "; ".join(verdict["failures"]) or "a gate failed"
            if not getattr(self.deployer, "force", False):
                raise GateError(f"not deploying: {failures} (set deployer.force=true to override)")
            log.warning("deploying despite failed gates because deployer.force=true: %s", failures)
            self._record_forced(failures)
        model_dir = self._source("model")
        if not (model_dir / "checksums.json").exists():
            raise RecframeError(f"no model artifact at {model_dir}: run the 'train' step or set run.resume_from")
        deployment = self.deployer.deploy(model_dir, self.run_dir)
        record = {"url": deployment.url, "smoke": deployment.smoke, **deployment.details}
        write_json(self.run_dir / "deploy.json", record)
        return deployment

    def _refresh_report(self) -> None:
        """Rewrite ``report/index.html`` once the deployment (or a forced deploy's warning) is known."""
        if getattr(self.tester, "html", False) and (self.run_dir / "report" / "report.json").exists():
            from recframe.report import write_report

            write_report(self.run_dir)

    def _record_forced(self, failures: str) -> None:
        path = self.run_dir / "report" / "report.json"
        if not path.exists():
            return
        report = json.loads(path.read_text())
        report.setdefault("warnings", []).append(f"deployed with deployer.force=true despite failed gates: {failures}")
        write_json(path, report)

    # ---------------------------------------------------------------- driver
    @contextmanager
    def _timed(self, step: str, timings: dict[str, float]):
        if self.on_step:
            self.on_step(step, "start", 0.0)
        t0 = time.perf_counter()
        yield
        timings[step] = round(time.perf_counter() - t0, 3)
        if self.on_step:
            self.on_step(step, "end", timings[step])

    @contextmanager
    def _write_errors(self, step: str):
        """A full disk or an over-limit file anywhere in a step becomes one :class:`OutputError` line."""
        try:
            yield
        except RecframeError:
            raise
        except Exception as e:
            err = output_error(e, step, self.run_dir)
            if err is None:
                raise
            raise err from None

    def run(self) -> RunResult:
        """Run the steps; with ``deployer.keep_alive`` block serving until interrupted."""
        if not is_rank_zero():
            self._join_ddp_fit()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        result = RunResult(run_dir=self.run_dir, steps=list(self.steps))
        if self.tracker:
            self.tracker.start(self.run_dir, self.run_dir.name)
            self.tracker.log_params(self.params)
        deployment = None
        try:
            for step in self.steps:
                with self._timed(step, result.timings), self._write_errors(step):
                    if step == "deploy":
                        deployment = self.step_deploy()
                    else:
                        getattr(self, f"step_{step}")()
            with self._write_errors("finish"):
                write_json(self.run_dir / "timings.json", result.timings)
            if self._dataset is not None:
                result.data_stats = self._dataset.stats
            metrics_path = self._source("metrics.json")
            if metrics_path.exists():
                result.metrics = json.loads(metrics_path.read_text())
            result.gates = self._gate_verdict()
            for finish in self.finishers:
                with self._write_errors("finish"):
                    finish(self, result)
            if deployment is not None:
                result.deployment = json.loads((self.run_dir / "deploy.json").read_text())
                self._refresh_report()
                if getattr(self.deployer, "keep_alive", False):
                    if self.on_step:
                        self.on_step("serve", "start", 0.0)
                    self.deployer.wait()
            if self.tracker:
                for name in ("metrics.json", "report/report.json", "report/index.html"):
                    if (self.run_dir / name).exists():
                        self.tracker.log_artifact(self.run_dir / name)
        finally:
            if deployment is not None:
                self.deployer.teardown()
            if self.tracker:
                self.tracker.close()
        return result
