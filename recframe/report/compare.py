"""Compare runs: a leaderboard of models side by side (``recframe compare RUN_DIR...``).

Input is any mix of run directories and multirun (sweep) directories: every folder under them that
holds a ``metrics.json`` is one run. For each run the leaderboard shows the model, its headline
metrics next to the popularity baseline of the *same* split, the gate verdict, the overrides it was
launched with (``.hydra/overrides.yaml``) and every config value that differs between the runs
(``.hydra/config.yaml``), which is what tells the rows of a sweep apart.

Output: ``leaderboard.csv`` (for notebooks and spreadsheets) and ``leaderboard.html`` (one
self-contained page with links to each run's report), written by the one leaderboard writer
(:mod:`recframe.report.leaderboard`) to ``--out`` (default: the multirun directory, or the common
parent of the runs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from recframe.interfaces import DataError, RecframeError
from recframe.report import svg
from recframe.report.leaderboard import Leaderboard, write_leaderboard
from recframe.report.run_files import read_json, read_yaml
from recframe.secrets import mask_override, mask_secrets

HEADLINE = ("hr", "mrr", "ndcg", "coverage", "popbias")
# config keys that always differ between runs and say nothing about the model
NOISE_KEYS = ("paths.", "hydra.", "run.resume_from", "run.progress")
MAX_DEPTH = 4


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Every run directory (a folder holding ``metrics.json``) at or below each path, sorted, unique."""
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise DataError(f"no such run directory: {p}")
        if (p / "metrics.json").is_file():
            found.append(p)
            continue
        base_depth = len(p.parts)
        for root, dirs, files in os.walk(p):
            depth = len(Path(root).parts) - base_depth
            dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if depth < MAX_DEPTH else []
            if "metrics.json" in files:
                found.append(Path(root))
                dirs[:] = []  # a run's own sub-folders hold no further runs
    unique = sorted({r.resolve(): r for r in found}.values(), key=lambda r: str(r))
    if not unique:
        raise DataError(f"no run found (no metrics.json) under: {', '.join(map(str, paths))}")
    return unique


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    elif isinstance(obj, list):
        out[prefix[:-1]] = json.dumps(obj)
    else:
        out[prefix[:-1]] = obj
    return out


def read_run(run: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """One leaderboard row (metrics, baseline, verdict) and the run's flattened config."""
    metrics = read_json(run / "metrics.json")
    if not isinstance(metrics, Mapping):
        raise DataError(f"{run / 'metrics.json'} is not a JSON object")
    row: dict[str, Any] = {"run": str(run), "model": metrics.get("model", "?")}
    base = metrics.get("baseline_pop") if isinstance(metrics.get("baseline_pop"), Mapping) else {}
    for key, value in metrics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            row[key] = value
    for key, value in base.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key.split("@")[0] in HEADLINE:
            row[f"pop {key}"] = value
    gates = read_json(run / "gates.json")
    row["gates"] = None if not isinstance(gates, Mapping) else ("passed" if gates.get("passed") else "FAILED")
    overrides = read_yaml(run / ".hydra" / "overrides.yaml")
    row["overrides"] = " ".join(mask_override(str(o)) for o in overrides) if isinstance(overrides, list) else ""
    report = read_json(run / "report" / "report.json")
    if isinstance(report, Mapping) and isinstance(report.get("timings"), Mapping):
        row["test_s"] = report["timings"].get("suite_s") or report["timings"].get("metrics_s")
    config = read_yaml(run / ".hydra" / "config.yaml")
    return row, _flatten(mask_secrets(config)) if isinstance(config, Mapping) else {}


def compare_runs(paths: Sequence[str | Path], sort_by: str = "hr@20") -> pd.DataFrame:
    """The leaderboard as a DataFrame, best first by ``sort_by``.

    Columns: ``run``, ``model``, the model's metrics, ``pop <metric>`` for the baseline, ``<metric> / pop``
    lifts for the headline cut-off, ``gates``, ``overrides``, ``test_s``, then ``config.<key>`` for each
    config value that differs between runs.
    """
    runs = find_runs(paths)
    rows, configs = [], []
    for r in runs:
        row, cfg = read_run(r)
        rows.append(row)
        configs.append(cfg)
    df = pd.DataFrame(rows)
    k = sort_by.split("@")[1] if "@" in sort_by else "20"
    for fam in ("hr", "mrr"):
        m = f"{fam}@{k}"
        if m in df.columns and f"pop {m}" in df.columns:
            pop = df[f"pop {m}"].where(df[f"pop {m}"] > 0)
            df[f"{m} / pop"] = df[m] / pop
    keys = sorted({k for c in configs for k in c if not k.startswith(NOISE_KEYS)})
    for key in keys:
        values = [c.get(key) for c in configs]
        if len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1:
            df[f"config.{key}"] = values
    if sort_by in df.columns:
        df = df.sort_values(sort_by, ascending=sort_by.startswith("popbias"), na_position="last", kind="stable")
    df.insert(0, "rank", range(1, len(df) + 1))
    return df.reset_index(drop=True)


def _common_out(paths: Sequence[str | Path]) -> Path:
    if len(paths) == 1:
        return Path(paths[0])
    return Path(os.path.commonpath([str(Path(p).resolve()) for p in paths]))


def comparison(df: pd.DataFrame, sort_by: str = "hr@20") -> Leaderboard:
    """The comparison as a :class:`Leaderboard`: best value per metric in bold, a chart of the
    headline metrics against the popularity baseline, and each run linked to its report."""
    metric_cols = [c for c in df.columns if "@" in c and not c.startswith(("pop ", "config."))]
    best: dict[str, Any] = {}
    for c in metric_cols:
        col = pd.to_numeric(df[c], errors="coerce")
        if col.notna().any():
            best[c] = col.min() if c.startswith("popbias") else col.max()
    labels = [f"{r['rank']}. {r['model']}" for _, r in df.iterrows()]
    charts = []
    k = sort_by.split("@")[1] if "@" in sort_by else "20"
    for fam in ("hr", "mrr"):
        m = f"{fam}@{k}"
        if m in df.columns:
            series = {"model": [float(x) if pd.notna(x) else 0.0 for x in df[m]]}
            if f"pop {m}" in df.columns:
                series["pop (same split)"] = [float(x) if pd.notna(x) else 0.0 for x in df[f"pop {m}"]]
            charts.append(svg.bar_chart(labels, series, title=f"{m} by run", width=max(420, 90 * len(labels))))
    intro = (
        f"{len(df)} runs, sorted by {sort_by}; the pop columns are the popularity baseline on each run's own "
        "split; bold marks the best value of each metric."
    )
    return Leaderboard(
        title="recframe leaderboard",
        columns=[str(c) for c in df.columns],
        rows=df.to_dict(orient="records"),
        intro=intro,
        link_column="run",
        run_dir_column="run",
        best=best,
        fail_values={"gates": "FAILED"},
        charts=charts,
    )


def write_comparison(df: pd.DataFrame, out_dir: str | Path, sort_by: str = "hr@20") -> tuple[Path, Path]:
    """Write the comparison as ``leaderboard.csv`` and ``leaderboard.html`` into ``out_dir``."""
    return write_leaderboard(comparison(df, sort_by), out_dir)


def main(argv: Sequence[str] | None = None) -> int:
    """``recframe compare RUN_DIR... [--out DIR] [--sort METRIC]``; returns the exit code."""
    p = argparse.ArgumentParser(
        prog="recframe compare",
        description="Leaderboard of runs side by side (HTML + CSV) from run or multirun directories.",
    )
    p.add_argument("runs", nargs="+", help="run directories and/or multirun directories")
    p.add_argument("--out", default=None, help="where to write leaderboard.{csv,html} (default: common parent)")
    p.add_argument("--sort", default="hr@20", help="metric to rank by (default hr@20; popbias ranks ascending)")
    args = p.parse_args(list(argv) if argv is not None else None)
    try:
        df = compare_runs(args.runs, sort_by=args.sort)
        csv_path, html_path = write_comparison(df, args.out or _common_out(args.runs), args.sort)
    except RecframeError as e:
        print(f"error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 1)
    shown = [c for c in ("rank", "model", args.sort, f"pop {args.sort}", "gates", "overrides") if c in df.columns]
    with pd.option_context("display.width", 160, "display.max_colwidth", 60):
        print(df[shown].to_string(index=False))
    print(f"wrote {html_path} and {csv_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
