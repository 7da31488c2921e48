"""The run report: ``report/index.html``, one self-contained file that anyone on the team can open.

It reads what the run directory holds (:mod:`recframe.report.run_files`) and degrades section by
section when a file is absent: ``.hydra/config.yaml`` (the resolved config), ``data/manifest.json``
(data stats and quarantine counts), ``data/lineage.json`` (the dbt DAG), ``train/metrics.csv``
(training curves), ``metrics.json`` / ``report/report.json`` (the test results), ``gates.json``,
``registry.json`` (the champion gate) and ``deploy.json``.

Design choices, and why:

* **No JavaScript, no external resource.** Charts are inline SVG (:mod:`recframe.report.svg`) and a
  Content-Security-Policy forbids every fetch, so the file renders the same offline, attached to an
  e-mail or opened from an artifact store, and cannot phone home.
* **Everything from data is escaped.** SKUs, category names, dbt descriptions and config values are
  user-controlled text; the page is an autoescaping Jinja2 template (``templates/run_report.html.j2``)
  and this module only gathers the values.
* **Secrets are masked** by :mod:`recframe.secrets`, because the report is made to be shared.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recframe import atomic
from recframe.report import svg
from recframe.report.auto_search import search_section
from recframe.report.rendering import render
from recframe.report.run_files import read_config, read_json, read_training_curves

if TYPE_CHECKING:
    from recframe.interfaces import TestResult

MAX_DAG_NODES = 80
FAMILIES = ["hr", "mrr", "ndcg", "coverage", "popbias"]


# ------------------------------------------------------------------------------------------------
# values for the template
# ------------------------------------------------------------------------------------------------


def fmt(v: Any, digits: int = 4) -> str:
    """A value as the report shows it: thousands separators, fixed decimals, ``n/a`` for missing."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if math.isfinite(v) else "n/a"
    if v is None:
        return "n/a"
    return str(v)


class Badge:
    """A pass/fail/skip badge for a table cell."""

    def __init__(self, passed: bool | None, text: str | None = None) -> None:
        self.kind = "skip" if passed is None else ("pass" if passed else "fail")
        self.text = text or {"skip": "skipped", "pass": "passed", "fail": "FAILED"}[self.kind]


def cell(v: Any) -> dict[str, Any]:
    """One table cell: its text, whether it is a number (right-aligned), and its badge kind."""
    if isinstance(v, Badge):
        return {"text": v.text, "num": False, "badge": v.kind}
    return {"text": fmt(v), "num": isinstance(v, (int, float)) and not isinstance(v, bool), "badge": None}


def table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> dict[str, Any]:
    """A table for the template's ``table`` macro."""
    return {"header": [str(h) for h in header], "rows": [[cell(c) for c in row] for row in rows]}


def _flatten(d: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out += _flatten(v, key + ".")
        elif isinstance(v, list):
            out.append((key, ", ".join(map(str, v[:20])) + (" …" if len(v) > 20 else "")))
        else:
            out.append((key, v))
    return out


# ------------------------------------------------------------------------------------------------
# sections
# ------------------------------------------------------------------------------------------------


def _summary(metrics: Mapping[str, Any], report: Mapping[str, Any], k: int, passed: bool | None) -> dict[str, Any]:
    base = metrics.get("baseline_pop") or {}
    cards = []
    for m in (f"hr@{k}", f"mrr@{k}", f"ndcg@{k}", f"coverage@{k}"):
        if m not in metrics:
            continue
        b = base.get(m)
        lift = f"pop {fmt(b)} · ×{metrics[m] / b:.2f}" if isinstance(b, (int, float)) and b else f"pop {fmt(b)}"
        cards.append({"label": m, "value": fmt(metrics[m]), "lift": lift})
    verdict = Badge(passed, "gates passed" if passed else "gates FAILED") if passed is not None else Badge(None)
    ds = report.get("dataset") or {}
    dataset = {key: fmt(ds.get(key)) for key in ("test_targets", "catalogue_items", "test_unknown_events")}
    timings = [(str(name), fmt(v, 2)) for name, v in (report.get("timings") or {}).items()]
    return {"verdict": verdict, "dataset": dataset if ds else None, "timings": timings, "cards": cards}


def _gates(report: Mapping[str, Any], failures: list[str], warnings: list[str]) -> dict[str, Any]:
    gates = report.get("gates") or []
    rows = [
        (
            g.get("metric"),
            g.get("expr"),
            g.get("on", "headline"),
            g.get("value"),
            g.get("threshold"),
            Badge(g.get("passed")),
            g.get("reason"),
        )
        for g in gates
    ]
    header = ["metric", "gate", "judged on", "value", "threshold", "verdict", "note"]
    return {
        "table": table(header, rows) if gates else None,
        "failures": [str(f) for f in failures],
        "warnings": [str(w) for w in warnings],
    }


def _served(metrics: Mapping[str, Any]) -> dict[str, Any] | None:
    """Headline vs served (the endpoint's ranking settings), side by side, for every accuracy metric."""
    served = metrics.get("served")
    if not isinstance(served, Mapping):
        return None
    base = served.get("baseline_pop") or {}
    names = [m for m in served if "@" in m and m.split("@")[0] in FAMILIES and isinstance(metrics.get(m), (int, float))]
    names.sort(key=lambda m: (FAMILIES.index(m.split("@")[0]), int(m.split("@")[1])))
    rows = [(m, metrics[m], served[m], base.get(m)) for m in names]
    settings = ", ".join(f"{key}={val}" for key, val in (served.get("settings") or {}).items())
    return {"settings": settings, "table": table(["metric", "headline", "served", "pop, served"], rows)}


def _metrics(metrics: Mapping[str, Any], k: int) -> dict[str, Any] | None:
    base = metrics.get("baseline_pop") or {}
    names = [m for m in metrics if isinstance(metrics[m], (int, float)) and "@" in m and m.split("@")[0] in FAMILIES]
    if not names:
        return None
    names.sort(key=lambda m: (FAMILIES.index(m.split("@")[0]), int(m.split("@")[1])))
    rows = []
    for m in names:
        b = base.get(m)
        rows.append((m, metrics[m], b, metrics[m] / b if isinstance(b, (int, float)) and b else None))
    acc = [m for m in names if m.endswith(f"@{k}")]
    chart = svg.bar_chart(
        acc, {"model": [metrics[m] for m in acc], "pop": [base.get(m) or 0.0 for m in acc]}, title=f"model vs pop @{k}"
    )
    extra = [
        (m, metrics[m])
        for m in metrics
        if m not in names and m not in ("model", "baseline_pop", "targets") and not isinstance(metrics[m], Mapping)
    ]
    return {
        "table": table(["metric", "model", "pop baseline", "model / pop"], rows),
        "chart": chart,
        "extra": table(["metric", "value"], extra) if extra else None,
    }


def _slices(result: Mapping[str, Any] | None, k: int) -> list[dict[str, Any]] | None:
    if not isinstance(result, Mapping):
        return None
    out = []
    for dim, tab in result.items():
        title = dim.replace("_", " ")
        if not isinstance(tab, Mapping) or "skipped" in tab:
            skipped = tab.get("skipped", "") if isinstance(tab, Mapping) else ""
            out.append({"title": title, "skipped": str(skipped)})
            continue
        groups = list(tab)
        series = {
            "model": [tab[g].get(f"hr@{k}", 0.0) for g in groups],
            "pop": [tab[g].get(f"pop_hr@{k}", 0.0) for g in groups],
        }
        keys = ("n", f"hr@{k}", f"pop_hr@{k}", f"mrr@{k}", f"pop_mrr@{k}")
        rows = [(g, *(tab[g].get(key) for key in keys)) for g in groups]
        header = ["slice", "targets", f"HR@{k}", f"pop HR@{k}", f"MRR@{k}", f"pop MRR@{k}"]
        chart = svg.bar_chart(groups, series, title=f"HR@{k} by {dim}")
        out.append({"title": title, "skipped": None, "chart": chart, "table": table(header, rows)})
    return out


def _perturbations(result: Mapping[str, Any] | None, k: int) -> dict[str, Any] | None:
    if not isinstance(result, Mapping):
        return None
    if "skipped" in result:
        return {"skipped": str(result["skipped"])}
    rows, names = [], []
    for name, r in result.items():
        if not isinstance(r, Mapping):
            continue
        if "skipped" in r:
            rows.append((name, Badge(None), None, None, None, None, r["skipped"]))
            continue
        names.append(name)
        keys = ("n", f"jaccard@{k}", "unchanged_share", f"hr@{k}", f"hr@{k}_perturbed")
        rows.append((name, *(r.get(key) for key in keys), f"{r.get(f'mrr@{k}_change', 0):+.4f}"))
    header = ["perturbation", "prefixes", f"Jaccard@{k}", "unchanged lists", f"HR@{k}", f"HR@{k} perturbed"]
    chart = ""
    if names:
        series = {
            f"Jaccard@{k}": [result[n][f"jaccard@{k}"] for n in names],
            f"HR@{k}": [result[n][f"hr@{k}"] for n in names],
            "HR perturbed": [result[n][f"hr@{k}_perturbed"] for n in names],
        }
        chart = svg.bar_chart(names, series, title="top-K overlap and accuracy under perturbation")
    return {"skipped": None, "table": table([*header, f"MRR@{k} change"], rows), "chart": chart}


def _less_wrong(result: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not isinstance(result, Mapping):
        return None
    if "skipped" in result and "cooccurrence" not in result:
        return {"skipped": str(result["skipped"])}
    rows = []
    for space in ("embedding", "cooccurrence"):
        r = result.get(space)
        if not isinstance(r, Mapping):
            continue
        if "skipped" in r:
            rows.append((space, None, None, None, None, r["skipped"]))
        else:
            keys = ("top1_similarity", "random_similarity", "lift", "closer_than_random_share")
            rows.append((space, *(r[key] for key in keys), ""))
    header = ["space", "top-1 similarity", "random similarity", "lift", "top-1 closer than random", "note"]
    return {
        "skipped": None,
        "misses": fmt(result.get("misses")),
        "k": fmt(result.get("k")),
        "sampled": fmt(result.get("sampled")),
        "table": table(header, rows),
    }


def _invariants(result: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not isinstance(result, Mapping):
        return None
    rows = []
    for name, r in result.items():
        if isinstance(r, Mapping):
            detail = ", ".join(f"{key}={fmt(v)}" for key, v in r.items() if key != "passed")
            rows.append((name, Badge(r.get("passed")), detail))
    return table(["invariant", "verdict", "details"], rows)


def _training(run_dir: Path) -> list[Any]:
    cols = read_training_curves(run_dir / "train" / "metrics.csv")
    if not cols:
        return []
    x = cols.get("epoch") or list(range(len(next(iter(cols.values())))))
    x = [v if v is not None else i for i, v in enumerate(x)]
    charts = []
    loss = {key: v for key, v in cols.items() if "loss" in key}
    val = {key: v for key, v in cols.items() if key != "epoch" and key not in loss}
    if loss:
        charts.append(svg.line_chart(x, loss, title="training loss"))
    if val:
        charts.append(svg.line_chart(x, val, title="validation metrics"))
    return charts


def _lineage(lineage: Any) -> dict[str, Any] | None:
    if not isinstance(lineage, Mapping) or not lineage.get("nodes"):
        return None
    raw_nodes = [n for n in lineage.get("nodes", []) if isinstance(n, Mapping) and n.get("id")]
    tests_per: dict[str, int] = {}
    test_ids = {str(n["id"]) for n in raw_nodes if n.get("type") == "test"}
    edges = []
    for e in lineage.get("edges", []):
        a, b = (e.get("from"), e.get("to")) if isinstance(e, Mapping) else (e[0], e[1])
        if str(b) in test_ids:
            tests_per[str(a)] = tests_per.get(str(a), 0) + 1
        elif str(a) not in test_ids:
            edges.append((str(a), str(b)))
    shown = [n for n in raw_nodes if str(n["id"]) not in test_ids]
    if len(shown) > MAX_DAG_NODES:
        return {"too_many": len(shown), "limit": MAX_DAG_NODES}
    nodes = []
    for n in shown:
        label = str(n.get("name") or n["id"])
        if tests_per.get(str(n["id"])):
            label += f" ✓{tests_per[str(n['id'])]}"
        nodes.append({"id": str(n["id"]), "label": label, "kind": str(n.get("type", "model"))})
    rows = [
        (
            n.get("name") or n["id"],
            n.get("type"),
            n.get("materialized"),
            tests_per.get(str(n["id"]), 0),
            n.get("description") or "",
        )
        for n in shown
    ]
    return {
        "too_many": 0,
        "drawing": svg.dag(nodes, edges, title="dbt lineage"),
        "table": table(["node", "type", "materialized", "tests", "description"], rows),
    }


def _data(run_dir: Path, report: Mapping[str, Any]) -> dict[str, Any]:
    manifest = read_json(run_dir / "data" / "manifest.json")
    stats = manifest.get("stats") if isinstance(manifest, Mapping) else None
    if not isinstance(stats, Mapping):
        stats = (report.get("dataset") or {}).get("stats")
    out: dict[str, Any] = {"stats": None, "quarantine": None}
    if isinstance(stats, Mapping) and stats:
        quarantine = {
            k: v for k, v in stats.items() if "quarantin" in k or k in ("raw_rows", "accepted", "rows_accounted")
        }
        rest = {k: v for k, v in stats.items() if k not in quarantine}
        out["quarantine"] = table(["", "value"], _flatten(quarantine)) if quarantine else None
        out["stats"] = table(["statistic", "value"], _flatten(rest))
    out["lineage"] = _lineage(read_json(run_dir / "data" / "lineage.json"))
    return out


def _champion(run_dir: Path) -> dict[str, Any] | None:
    """The champion gate of ``registry.json``: champion and challenger on this run's test split, side by side."""
    record = read_json(run_dir / "registry.json")
    gate = record.get("champion_gate") if isinstance(record, Mapping) else None
    if not isinstance(gate, Mapping):
        return None
    if "metric" not in gate:  # the gate could not score the champion
        return {"reason": str(gate.get("reason") or "the champion could not be scored"), "table": None}
    metric, margin = str(gate["metric"]), float(gate.get("margin") or 0.0)
    champ, chall = gate.get("champion") or {}, gate.get("challenger") or {}
    a, b = champ.get(metric), chall.get(metric)
    numbers = isinstance(a, (int, float)) and isinstance(b, (int, float))
    rows = [
        ("model version", gate.get("champion_version"), record.get("model_version")),
        (metric, a, b),
        ("test targets", champ.get("targets"), chall.get("targets")),
    ]
    wins = bool(gate.get("wins"))
    served = ", ".join(f"{key}={val}" for key, val in (gate.get("served") or {}).items())
    return {
        "reason": None,
        "table": table(["", "champion", "challenger (this run)"], rows),
        "decision": table(
            ["metric", "margin", "threshold", "challenger - champion", "decision"],
            [
                (
                    metric,
                    margin,
                    a * (1.0 + margin) if numbers else None,
                    b - a if numbers else None,
                    Badge(wins, "promoted" if wins else "kept the champion"),
                )
            ],
        ),
        "served": served or None,
    }


def _deployment(run_dir: Path) -> dict[str, Any] | None:
    deploy = read_json(run_dir / "deploy.json")
    return table(["", "value"], _flatten(deploy)) if isinstance(deploy, Mapping) else None


def _config(run_dir: Path, settings: Mapping[str, Any] | None) -> dict[str, Any]:
    scaled = read_json(run_dir / "train" / "scaled_params.json")  # model keys left at auto, as fit resolved them
    return {
        "settings": table(["setting", "value"], _flatten(settings)) if settings else None,
        "scaled": table(["model key (auto)", "value"], _flatten(scaled)) if isinstance(scaled, Mapping) else None,
        "text": read_config(run_dir),
    }


# ------------------------------------------------------------------------------------------------
# the page
# ------------------------------------------------------------------------------------------------


def render_report(run_dir: str | Path, result: TestResult | None = None) -> str:
    """The report as an HTML string (``write_report`` writes it)."""
    run_dir = Path(run_dir)
    if result is not None:
        metrics, report = dict(result.metrics), dict(result.report)
        passed, failures = result.passed, list(result.failures)
    else:
        report = read_json(run_dir / "report" / "report.json") or {}
        metrics = read_json(run_dir / "metrics.json") or report.get("metrics") or {}
        verdict = read_json(run_dir / "gates.json") or {}
        passed = verdict.get("passed", report.get("passed"))
        failures = list(verdict.get("failures", report.get("failures", [])))
    on_disk = read_json(run_dir / "report" / "report.json") or {}
    warnings = list(report.get("warnings") or on_disk.get("warnings") or [])
    settings = report.get("settings") or report.get("metadata") or {}
    k = int(settings.get("k", 20)) if isinstance(settings.get("k", 20), int) else 20
    tests = {d.get("name"): d.get("result") for d in report.get("data", []) if isinstance(d, Mapping)}
    model = str(metrics.get("model") or (report.get("metadata") or {}).get("model_name") or "model")
    sections = [
        ("summary", "Summary", _summary(metrics, report, k, None if report.get("skipped") else passed)),
        ("gates", "Gate verdicts", _gates(report, failures, warnings)),
        ("metrics", "Metrics vs baselines", _metrics(metrics, k)),
        ("served", "As served", _served(metrics)),
        ("slices", "Slices", _slices(tests.get("slices"), k)),
        ("perturbations", "Perturbations", _perturbations(tests.get("perturbations"), k)),
        ("less-wrong", "Less wrong", _less_wrong(tests.get("less_wrong"))),
        ("invariants", "Invariants", _invariants(tests.get("invariants"))),
        ("training", "Training curves", _training(run_dir)),
        ("data", "Data", _data(run_dir, report)),
        ("champion", "Champion vs challenger", _champion(run_dir)),
        ("deployment", "Deployment", _deployment(run_dir)),
        ("config", "Run configuration", _config(run_dir, report.get("settings"))),
    ]
    search = search_section(run_dir)
    if search is not None:  # model=auto: its search, just before the training curves
        at = next(i for i, s in enumerate(sections) if s[0] == "training")
        sections.insert(at, ("model-search", "Model search", search))
    return render(
        "run_report.html.j2",
        model=model,
        run_name=run_dir.name,
        written=datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        sections=[{"anchor": a, "title": t, "data": d} for a, t, d in sections],
    )


def write_report(run_dir: str | Path, result: TestResult | None = None) -> Path:
    """Write ``run_dir/report/index.html`` atomically and return its path.

    With ``result`` (what a tester just returned) the report shows it; without, it is rebuilt from
    ``report/report.json``, ``metrics.json`` and ``gates.json``, so the pipeline can refresh the page
    after the deploy step (to show ``deploy.json`` or a forced-deploy warning).
    """
    out = Path(run_dir) / "report" / "index.html"
    return atomic.write_text(out, render_report(run_dir, result))
