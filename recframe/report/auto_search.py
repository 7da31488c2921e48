"""The "Model search" section of the run report, for ``model=auto`` runs.

It reads ``train/auto_search.json`` (written by :class:`~recframe.model.auto.model.AutoModel`) and
shows why the winner won: the chosen members and weights, the time each stage took against the
budget, every trial with its validation score and seconds, GRU4Rec's run, and the best blends. Runs
of other models have no such file, and the report leaves the section out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recframe.report.run_files import read_json

MAX_TRIAL_ROWS = 200
MAX_BLEND_ROWS = 10


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={round(v, 4) if isinstance(v, float) else v}" for k, v in params.items())


def _mix(weights: dict[str, float], normalize: dict[str, str]) -> str:
    return " + ".join(f"{w:g} {k} ({normalize.get(k, '')})" for k, w in weights.items() if w > 0)


def search_section(run_dir: Path) -> dict[str, Any] | None:
    """Values for ``auto_search.html.j2``; None when the run has no search log."""
    from recframe.report.run_report import table

    log = read_json(Path(run_dir) / "train" / "auto_search.json")
    if not isinstance(log, dict) or "winner" not in log:
        return None
    metric, winner, budget = log.get("metric", "score"), log["winner"], log.get("budget", {})
    best = {}
    for t in log.get("trials", []):
        if t.get("score") is not None and t["score"] > best.get(t["model"], -1.0):
            best[t["model"]] = t["score"]
    trials = [
        [t["number"], t["model"], t["score"], t["seconds"], "best of its model" if best.get(t["model"]) == t["score"]
         else t.get("state", ""), _params(t.get("params", {}))]
        for t in log.get("trials", [])[:MAX_TRIAL_ROWS]
    ]  # fmt: skip
    stages = [[k, v["seconds"], v.get("share_of_budget")] for k, v in budget.get("stages", {}).items()]
    gru = log.get("gru")
    gru_rows = None
    if gru:
        gru_rows = table(
            ["epochs", f"validation {metric}", "best val_mrr@20", "seconds", "seconds allowed", "stopped by budget"],
            [[gru.get("epochs"), gru.get("score"), gru.get("best_val_mrr@20"), gru.get("seconds"),
              gru.get("seconds_allowed"), bool(gru.get("stopped_by_budget"))]],
        )  # fmt: skip
    blends = [[_mix(p["weights"], p["normalize"]), p["score"]] for p in log.get("blend", {}).get("points", [])]
    return {
        "why": winner.get("why", ""),
        "metric": metric,
        "validation": log.get("validation", {}),
        "winner": table(
            ["member", "weight", "scaling", "parameters"],
            [
                [k, winner["weights"].get(k), winner["normalize"].get(k), _params(winner["params"].get(k, {}))]
                for k in winner.get("members", [])
            ],
        ),  # fmt: skip
        "budget": {"budget_s": budget.get("budget_s"), "used_s": budget.get("used_s"), "mode": budget.get("mode")},
        "stages": table(["stage", "seconds", "share of budget"], stages),
        "trials": table(["trial", "model", f"validation {metric}", "seconds", "note", "parameters"], trials),
        "gru": gru_rows,
        "blends": table(["blend", f"validation {metric}"], blends[:MAX_BLEND_ROWS]),
    }
