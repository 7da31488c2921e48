"""What the user sees during a CLI run: a line per step and a one-screen summary at the end."""

from __future__ import annotations

import logging
import math
import sys
from typing import Any

from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from recframe.interfaces import RecframeError
from recframe.pipeline import RunResult

log = logging.getLogger("recframe")
_LABELS = {
    "data": "data: ingest raw events, dbt build, query sessions, split",
    "train": "train: fit the model",
    "test": "test: full-ranking metrics and behavioural tests",
    "score": "score: batch recommendations into the warehouse",
    "deploy": "deploy: start the endpoint and smoke-test it",
    "serve": "serving until Ctrl-C (deployer.keep_alive=true)",
}


def run_with_console(cfg: DictConfig, parts: dict[str, Any] | None = None) -> float | None:
    """The body of the Hydra job: build, run, summarise. Returns validation MRR@20 for sweepers.

    ``parts``: the components the CLI's pre-check already built and checked from this config (None
    builds and checks them here, e.g. in each job of a sweep).
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from recframe.app import build_pipeline

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    console = Console(stderr=True, highlight=False)

    def on_step(step: str, phase: str, seconds: float) -> None:
        if phase == "start":
            console.print(f"[bold cyan]>[/] {_LABELS.get(step, step)}")
        else:
            console.print(f"[green]done[/] {step} in {seconds:.1f} s")

    # Hydra's run_and_report would print a traceback for any exception: user errors end here instead.
    try:
        pipeline = build_pipeline(cfg, run_dir=hc.runtime.output_dir, on_step=on_step, parts=parts)
        result = pipeline.run()
    except RecframeError as e:
        if multirun:
            log.error("job %s failed: %s", hc.job.num, e)
            return math.nan
        console.print(f"recframe: error: {e}", markup=False, soft_wrap=True)  # one line, never wrapped
        sys.exit(getattr(e, "exit_code", 1))
    except KeyboardInterrupt:
        console.print("recframe: interrupted", markup=False)
        sys.exit(130)
    if cfg.run.get("progress", True):
        print_summary(console, result)
    return objective(result)


def objective(result: RunResult) -> float | None:
    """The value a sweeper optimises: MRR@20 on the validation split (never the test split)."""
    val = result.metrics.get("val_mrr@20")
    return float(val) if val is not None else None


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def deployment_line(record: dict[str, Any]) -> str:
    """The summary's endpoint line; a deployer that serves nothing (``deployer=none``) says so."""
    smoke = record.get("smoke") or {}
    if smoke.get("skipped") or not record.get("url"):
        return f"deploy skipped (deployer={record.get('deployer', 'none')})"
    ok = smoke.get("passed", smoke.get("ok"))
    return f"{record.get('url')} (smoke test {'passed' if ok else 'FAILED'})"


def print_summary(console: Console, result: RunResult) -> None:
    """One screen: data stats, metrics against pop, the endpoint and where everything went."""
    table = Table(title="recframe run summary", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    stats = result.data_stats or {}
    for split in ("train", "valid", "test"):
        s = stats.get(split)
        if isinstance(s, dict):
            parts = [f"{k}={v}" for k, v in s.items() if k in ("sessions", "events", "items", "targets")]
            table.add_row(f"data {split}", ", ".join(parts))
    if stats.get("quarantined") is not None:
        table.add_row("quarantined rows", _fmt(stats.get("quarantined")))
    m = result.metrics
    if m:
        base = m.get("baseline_pop", {})
        for key in ("hr@20", "mrr@20", "ndcg@20"):
            if key in m:
                b = base.get(key)
                lift = f"  (pop {_fmt(b)}, x{m[key] / b:.1f})" if isinstance(b, (int, float)) and b > 0 else ""
                table.add_row(f"{m.get('model', 'model')} {key}", _fmt(m[key]) + lift)
        served = m.get("served")
        if isinstance(served, dict):  # what the endpoint ranks (exclude_seen...): the figures the gates judge
            figs = ", ".join(f"{key} {_fmt(served[key])}" for key in ("hr@20", "mrr@20") if key in served)
            settings = ", ".join(f"{k}={v}" for k, v in (served.get("settings") or {}).items())
            table.add_row("as served", f"{figs}  ({settings})")
    if result.gates is not None:
        verdict = "passed" if result.gates.get("passed") else "FAILED: " + "; ".join(result.gates.get("failures", []))
        table.add_row("gates", verdict)
    if result.deployment:
        table.add_row("endpoint", deployment_line(result.deployment))
    table.add_row("timings", ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items()))
    table.add_row("run dir", str(result.run_dir))
    console.print(table)
