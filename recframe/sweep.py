"""What a sweep leaves behind: a leaderboard (CSV + HTML) and the best job's config.

``python -m recframe -m model=pop,sknn tester.k=10,20`` runs one job per combination, each in its
own run directory under the sweep directory. When the sweep ends, Hydra calls
:meth:`LeaderboardCallback.on_multirun_end`, which reads every job's ``metrics.json`` and writes,
next to the jobs::

    leaderboard.csv    one row per job, best first (failed jobs last, with the reason)
    leaderboard.html   the same table, self-contained, linking each job's report
    best.yaml          the winner: objective, value, overrides, the command to rerun it, its config

It works the same for the basic sweeper, the Optuna sweeper and any launcher, because it reads only
the run directories. A job that failed (the CLI returns NaN for it so the sweep goes on) has no
``metrics.json``: it is listed as failed, with the error line from its log. Under the Optuna
sweeper, :meth:`LeaderboardCallback.on_job_end` also turns such a NaN into a failed job, so the
study records a failed trial and goes on instead of ending.

The callback is registered in ``conf/hydra/default.yaml``; Hydra instantiates callbacks for single
runs too, so this module imports nothing heavy at import time.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from recframe import atomic
from recframe.secrets import mask_override, mask_secrets

if TYPE_CHECKING:
    from recframe.report.leaderboard import Leaderboard

log = logging.getLogger("recframe")

# The objective the CLI returns to sweepers (recframe.console.objective): validation MRR@20 when the
# run recorded it, else test MRR@20. The leaderboard ranks by the same number.
DEFAULT_OBJECTIVES = ("val_mrr@20", "mrr@20")
HEADLINE = ("hr@20", "mrr@20", "ndcg@20")


@dataclass
class JobResult:
    """One job of a sweep, as read back from its run directory."""

    num: str
    run_dir: Path
    overrides: list[str]
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    failed_after_test: bool = False

    @property
    def ok(self) -> bool:
        return bool(self.metrics) and not self.failed_after_test

    def value(self, objectives: tuple[str, ...]) -> float:
        """The objective, or NaN when the job failed or did not record it."""
        if self.failed_after_test:
            return math.nan
        for key in objectives:
            v = self.metrics.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return float(v)
        return math.nan


def read_jobs(sweep_dir: Path) -> list[JobResult]:
    """Every job under ``sweep_dir`` (any folder holding ``.hydra/overrides.yaml``), in job order."""
    jobs: list[JobResult] = []
    for marker in sweep_dir.rglob(".hydra/overrides.yaml"):
        run_dir = marker.parent.parent
        if run_dir == sweep_dir:
            continue
        # masked on reading: the overrides reach the leaderboard, the summary and best.yaml
        overrides = [mask_override(str(o)) for o in (OmegaConf.load(marker) or [])]
        metrics_path = run_dir / "metrics.json"
        metrics: dict[str, Any] = {}
        if metrics_path.exists():
            try:
                metrics = json.loads(metrics_path.read_text())
            except json.JSONDecodeError:
                metrics = {}
        job = JobResult(num=str(run_dir.relative_to(sweep_dir)), run_dir=run_dir, overrides=overrides, metrics=metrics)
        error = last_error(run_dir)
        if error is not None and " failed: " in error:
            # failed after testing (e.g. a gate blocked the deploy step): the sweeper got NaN, so the
            # leaderboard does not rank it either; its metrics stay visible in the row
            job.error, job.failed_after_test = error, bool(metrics)
        elif not job.ok:
            job.error = error or "no metrics.json (the job failed or skipped the test step)"
        jobs.append(job)
    return sorted(jobs, key=lambda j: (len(j.num), j.num))


def last_error(run_dir: Path) -> str | None:
    """The last ERROR line of a job's Hydra log (the CLI logs why a sweep job failed there)."""
    for log_file in sorted(run_dir.glob("*.log")):
        lines = [ln for ln in log_file.read_text(errors="replace").splitlines() if "[ERROR]" in ln]
        if lines:
            return lines[-1].split("[ERROR]", 1)[1].strip()
    return None


def rank(jobs: list[JobResult], objectives: tuple[str, ...], maximize: bool = True) -> list[JobResult]:
    """Best first; jobs without a finite objective last, in job order."""
    scored = [j for j in jobs if math.isfinite(j.value(objectives))]
    unscored = [j for j in jobs if not math.isfinite(j.value(objectives))]
    scored.sort(key=lambda j: j.value(objectives), reverse=maximize)
    return scored + unscored


def swept(jobs: list[JobResult]) -> list[str]:
    """The override keys whose value differs between jobs: what the sweep varied (shown in the table)."""
    values: dict[str, set[str | None]] = {}
    for j in jobs:
        for o in j.overrides:
            key, _, value = o.partition("=")
            values.setdefault(key, set()).add(value)
    return [k for k, vs in values.items() if len(vs) > 1 or any(k not in _keys(j) for j in jobs)]


def _keys(job: JobResult) -> set[str]:
    return {o.partition("=")[0] for o in job.overrides}


def leaderboard_rows(ranked: list[JobResult], objectives: tuple[str, ...]) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and rows of the leaderboard: rank, job, status, objective, swept params, then metrics."""
    varied = set(swept(ranked))
    metric_keys: list[str] = [k for k in HEADLINE if any(k in j.metrics for j in ranked)]
    for j in ranked:
        for k, v in j.metrics.items():
            if k not in metric_keys and isinstance(v, (int, float)) and not isinstance(v, bool):
                metric_keys.append(k)
    has_pop = any(isinstance(j.metrics.get("baseline_pop"), dict) for j in ranked)
    columns = ["rank", "job", "status", "objective", "model", "params", *metric_keys]
    if has_pop:
        columns.append("pop_mrr@20")
    columns += ["error", "overrides", "run_dir"]
    rows = []
    for i, j in enumerate(ranked, start=1):
        value = j.value(objectives)
        row: dict[str, Any] = {
            "rank": i if math.isfinite(value) else "",
            "job": j.num,
            "status": "ok" if j.ok else "failed",
            "objective": value if math.isfinite(value) else "",
            "model": j.metrics.get("model", ""),
            "params": " ".join(o for o in j.overrides if o.partition("=")[0] in varied),
            "overrides": " ".join(j.overrides),
            "error": j.error or "",
            "run_dir": str(j.run_dir),
        }
        for k in metric_keys:
            row[k] = j.metrics.get(k, "")
        if has_pop:
            row["pop_mrr@20"] = (j.metrics.get("baseline_pop") or {}).get("mrr@20", "")
        rows.append(row)
    return columns, rows


def leaderboard(
    columns: list[str], rows: list[dict[str, Any]], title: str, objective: str, compare: Path | None = None
) -> Leaderboard:
    """The sweep's jobs as a :class:`~recframe.report.leaderboard.Leaderboard`: the winner
    highlighted, failed jobs in red, each job linked to its report, and a link to the comparison."""
    from recframe.report.leaderboard import Leaderboard

    failed = sum(r["status"] == "failed" for r in rows)
    return Leaderboard(
        title=title,
        columns=columns,
        rows=rows,
        intro=f"Ranked by {objective} (higher is better). {len(rows)} jobs, {failed} failed.",
        hidden=("run_dir", "overrides"),
        link_column="job",
        run_dir_column="run_dir",
        row_classes=["best" if r["rank"] == 1 else ("failed" if r["status"] == "failed" else "") for r in rows],
        extra_link=("Lifts over pop and config differences:", "comparison", compare) if compare is not None else None,
    )


def write_best(path: Path, best: JobResult, objective: str, value: float) -> None:
    """``best.yaml``: what won, how to rerun it, and its full config.

    The config is the job's ``.hydra/config.yaml`` with interpolations left as written (so
    ``${oc.env:...}`` stays a reference) and values under secret-looking keys masked, because
    ``best.yaml`` is the file people paste into tickets and commit as a preset.
    """
    config_path = best.run_dir / ".hydra" / "config.yaml"
    config = OmegaConf.to_container(OmegaConf.load(config_path), resolve=False) if config_path.exists() else {}
    overrides = best.overrides
    doc = {
        "objective": objective,
        "value": value,
        "job": best.num,
        "run_dir": str(best.run_dir),
        "overrides": overrides,
        "command": "python -m recframe " + " ".join(overrides),
        "metrics": {k: v for k, v in best.metrics.items() if not isinstance(v, dict)},
        "config": mask_secrets(config),
    }
    with atomic.atomic_path(path) as tmp:
        OmegaConf.save(OmegaConf.create(doc), tmp)


def summarize_sweep(
    sweep_dir: str | Path,
    objectives: tuple[str, ...] = DEFAULT_OBJECTIVES,
    maximize: bool = True,
    title: str | None = None,
) -> dict[str, Any]:
    """Write ``leaderboard.csv``, ``leaderboard.html`` and ``best.yaml`` into ``sweep_dir``.

    Usable on its own (``python -m recframe.sweep SWEEP_DIR``) for a sweep whose callback did not run,
    e.g. one that was interrupted. Returns a summary dict (paths, job counts, the best job).
    """
    sweep_dir = Path(sweep_dir)
    jobs = read_jobs(sweep_dir)
    ranked = rank(jobs, objectives, maximize)
    used = next((k for k in objectives if any(k in j.metrics for j in jobs)), objectives[-1])
    columns, rows = leaderboard_rows(ranked, objectives)
    best_path = sweep_dir / "best.yaml"
    compare_dir = _compare_runs([j.run_dir for j in ranked if j.ok], sweep_dir, used)
    compare_html = compare_dir / "leaderboard.html" if compare_dir is not None else None
    from recframe.report.leaderboard import write_leaderboard

    board = leaderboard(columns, rows, title or f"recframe sweep {sweep_dir.name}", used, compare_html)
    csv_path, html_path = write_leaderboard(board, sweep_dir)
    summary: dict[str, Any] = {
        "sweep_dir": str(sweep_dir),
        "jobs": len(jobs),
        "failed": sum(not j.ok for j in jobs),
        "leaderboard_csv": str(csv_path),
        "leaderboard_html": str(html_path),
        "objective": used,
        "best": None,
    }
    if ranked and math.isfinite(ranked[0].value(objectives)):
        best = ranked[0]
        value = best.value(objectives)
        write_best(best_path, best, used, value)
        varied = set(swept(jobs))
        summary["best"] = {
            "job": best.num,
            "value": value,
            "overrides": best.overrides,
            "params": [o for o in best.overrides if o.partition("=")[0] in varied],
            "run_dir": str(best.run_dir),
        }
        summary["best_yaml"] = str(best_path)
    elif best_path.exists():
        best_path.unlink()  # a stale winner from an earlier summary of this folder would mislead
    if compare_html is not None:
        summary["compare_html"] = str(compare_html)
    return summary


def _compare_runs(run_dirs: list[Path], sweep_dir: Path, sort_by: str) -> Path | None:
    """Also write the comparison page (``recframe compare``: lifts over pop, config diffs, a chart)
    for the finished jobs, into ``SWEEP_DIR/compare/``.

    Our own leaderboard is written first and is the contract (it lists failed jobs too); the
    comparison is a bonus, so any failure here is logged, never raised: a sweep must not fail after
    all its jobs succeeded.
    """
    if not run_dirs:
        return None
    from recframe.report.compare import compare_runs, write_comparison

    out = sweep_dir / "compare"
    try:
        df = compare_runs([str(p) for p in run_dirs], sort_by=sort_by)
        write_comparison(df, out, sort_by=sort_by)
    except Exception as e:  # noqa: BLE001 - see docstring
        log.warning("recframe compare could not compare the sweep's runs: %s", e)
        return None
    return out


class LeaderboardCallback(Callback):
    """Hydra callback: at the end of a multirun, write the leaderboard and ``best.yaml``.

    Args:
        objectives: metric keys tried in order as the ranking objective (the first one a job has).
        maximize: rank higher values first (all recframe headline metrics are "higher is better").
        enabled: switch it off with ``hydra.callbacks.leaderboard.enabled=false``.
    """

    def __init__(
        self, objectives: list[str] | tuple[str, ...] = DEFAULT_OBJECTIVES, maximize: bool = True, enabled: bool = True
    ) -> None:
        self.objectives = tuple(objectives)
        self.maximize = maximize
        self.enabled = enabled
        self._sweep_dir: Path | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Resolve the sweep dir now: ${now:...} read again at the end could name another folder.
        self._sweep_dir = Path(str(config.hydra.sweep.dir))

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        """Under the Optuna sweeper, report a job that returned NaN as a failed job.

        Why: the CLI returns NaN for a job that failed so the *basic* sweeper goes on (it re-raises
        failed jobs). hydra-optuna-sweeper 1.3.0 instead tells Optuna 2.10 a COMPLETE trial with
        value NaN; Optuna rejects it and the sweeper's error path then raises again, ending the
        study. Marked failed, the job takes the sweeper's supported path: the trial is recorded as
        FAIL and the study goes on (``max_failure_rate: 1.0`` in ``conf/hparams_search``).
        """
        if not _optuna_sweeper(config):
            return
        from hydra.core.utils import JobStatus

        value = getattr(job_return, "_return_value", None)
        if job_return.status == JobStatus.COMPLETED and isinstance(value, float) and math.isnan(value):
            job_return.status = JobStatus.FAILED
            job_return.return_value = FailedJobError("the job failed; its log in the run directory says why")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled:
            return
        sweep_dir = self._sweep_dir or Path(str(config.hydra.sweep.dir))
        if not sweep_dir.is_dir():
            return
        try:
            summary = summarize_sweep(sweep_dir, self.objectives, self.maximize)
        except Exception as e:  # noqa: BLE001 - the jobs' results are already on disk; say so, don't crash
            log.error("could not write the sweep leaderboard in %s: %s", sweep_dir, e)
            return
        print(format_summary(summary), file=sys.stderr)


class FailedJobError(RuntimeError):
    """Stands in for a sweep job that returned NaN (the CLI's "this job failed, go on" value)."""


def _optuna_sweeper(config: DictConfig) -> bool:
    target = OmegaConf.select(config, "hydra.sweeper._target_", default="") or ""
    return "optuna" in str(target).lower()


def format_summary(summary: dict[str, Any]) -> str:
    """The few lines printed at the end of a sweep."""
    lines = [
        f"sweep: {summary['jobs']} jobs, {summary['failed']} failed; leaderboard: {summary['leaderboard_html']}",
    ]
    best = summary.get("best")
    if best:
        lines.append(
            f"best: job {best['job']} {summary['objective']}={best['value']:.4f} "
            f"({' '.join(best['params']) or 'defaults'}) -> {summary['best_yaml']}"
        )
    else:
        lines.append("best: none (no job recorded the objective)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m recframe.sweep SWEEP_DIR``: (re)write the leaderboard of a finished sweep."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: python -m recframe.sweep SWEEP_DIR", file=sys.stderr)
        return 2
    if not Path(args[0]).is_dir():
        print(f"recframe: error: not a directory: {args[0]}", file=sys.stderr)
        return 2
    print(format_summary(summarize_sweep(args[0])), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
