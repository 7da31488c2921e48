"""The run report: ``report/index.html``, one self-contained file that anyone on the team can open.

It reads what the run directory holds (see docs/architecture.md) and degrades section by section when
a file is absent: ``.hydra/config.yaml`` (the resolved config), ``data/manifest.json`` (data stats and
quarantine counts), ``data/lineage.json`` (the dbt DAG), ``train/metrics.csv`` (training curves),
``metrics.json`` / ``report/report.json`` (the test results), ``gates.json`` and ``deploy.json``.

Design choices, and why:

* **No JavaScript, no external resource.** Charts are inline SVG (:mod:`recframe.tester.svg`) and a
  Content-Security-Policy forbids every fetch, so the file renders the same offline, attached to an
  e-mail or opened from an artifact store, and cannot phone home.
* **Everything from data is escaped.** SKUs, category names, dbt descriptions and config values are
  user-controlled text.
* **Secrets are masked.** Config keys that look like credentials are shown as ``***``, because the
  report is made to be shared.
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import re
from collections.abc import Iterable, Mapping
from html import escape
from pathlib import Path
from typing import Any

from recframe.interfaces import TestResult
from recframe.tester import svg

SECRET_KEY = re.compile(r"(pass(word)?|secret|token|api[_-]?key|private[_-]?key|credential|access[_-]?key)", re.I)
MAX_DAG_NODES = 80

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#222;background:#f6f7f9}
header{background:#1f2d3d;color:#fff;padding:16px 28px}
header h1{margin:0;font-size:22px} header p{margin:4px 0 0;color:#c9d3dd;font-size:13px}
nav{background:#fff;border-bottom:1px solid #dde;padding:8px 28px;position:sticky;top:0;font-size:13px}
nav a{margin-right:14px;color:#3366cc;text-decoration:none}
main{padding:8px 28px 40px;max-width:1200px}
section{background:#fff;border:1px solid #e2e4e8;border-radius:6px;margin:16px 0;padding:12px 18px}
h2{font-size:18px;margin:4px 0 10px} h3{font-size:15px;margin:14px 0 6px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border-bottom:1px solid #eee;padding:4px 10px;text-align:left} th{background:#f2f4f7}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;font-weight:bold;font-size:13px}
.pass{background:#d8f3dc;color:#1b5e20} .fail{background:#fde2e1;color:#b71c1c} .skip{background:#eee;color:#555}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #e2e4e8;border-radius:6px;padding:8px 14px;min-width:150px}
.card .v{font-size:22px;font-weight:bold} .card .l{font-size:12px;color:#666}
.charts{display:flex;flex-wrap:wrap;gap:12px} .muted{color:#777;font-size:13px}
pre{background:#f6f8fa;padding:10px;overflow:auto;font-size:12px;max-height:480px}
.scroll{overflow-x:auto}
"""


# ------------------------------------------------------------------------------------------------
# reading the run directory
# ------------------------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_training_curves(path: Path) -> dict[str, list[float | None]] | None:
    """Columns of ``train/metrics.csv`` as float lists (None for blanks); None when absent or empty."""
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return None
    if not rows:
        return None
    cols: dict[str, list[float | None]] = {}
    for key in rows[0]:
        vals: list[float | None] = []
        for r in rows:
            try:
                x = float(r.get(key) or "nan")
                vals.append(x if math.isfinite(x) else None)
            except ValueError:
                vals.append(None)
        cols[key] = vals
    return cols


def mask_secrets(obj: Any) -> Any:
    """Replace the values of credential-looking keys by ``***`` (recursively)."""
    if isinstance(obj, Mapping):
        return {
            k: ("***" if SECRET_KEY.search(str(k)) and v not in (None, "") else mask_secrets(v)) for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [mask_secrets(x) for x in obj]
    return obj


def read_config(run_dir: Path) -> str | None:
    """The resolved Hydra config as YAML text with secrets masked (None when absent)."""
    path = run_dir / ".hydra" / "config.yaml"
    if not path.exists():
        return None
    try:
        import yaml

        return yaml.safe_dump(mask_secrets(yaml.safe_load(path.read_text())), sort_keys=False)
    except Exception:  # an unreadable config must not cost the report: show that it is unreadable
        return "# config.yaml could not be parsed"


# ------------------------------------------------------------------------------------------------
# small HTML helpers
# ------------------------------------------------------------------------------------------------


def _num(v: Any, digits: int = 4) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "n/a"
        return f"{v:.{digits}f}"
    if v is None:
        return "n/a"
    return escape(str(v))


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for c in row:
            if isinstance(c, _Raw):
                cells.append(f"<td>{c.html}</td>")
            elif isinstance(c, (int, float)) and not isinstance(c, bool):
                cells.append(f"<td class='num'>{_num(c)}</td>")
            else:
                cells.append(f"<td>{_num(c)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"


class _Raw:
    """Trusted HTML (built here from escaped parts) to put in a table cell as is."""

    def __init__(self, html: str) -> None:
        self.html = html


def _badge(passed: bool | None, text: str | None = None) -> _Raw:
    if passed is None:
        return _Raw(f"<span class='badge skip'>{escape(text or 'skipped')}</span>")
    cls = "pass" if passed else "fail"
    return _Raw(f"<span class='badge {cls}'>{escape(text or ('passed' if passed else 'FAILED'))}</span>")


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


def _section(anchor: str, title: str, body: str) -> str:
    return f"<section id='{anchor}'><h2>{escape(title)}</h2>{body}</section>"


def _tests_by_name(report: Mapping[str, Any]) -> dict[str, Any]:
    return {d.get("name"): d.get("result") for d in report.get("data", []) if isinstance(d, Mapping)}


# ------------------------------------------------------------------------------------------------
# sections
# ------------------------------------------------------------------------------------------------


def _summary(metrics: Mapping[str, Any], report: Mapping[str, Any], k: int, passed: bool | None) -> str:
    base = metrics.get("baseline_pop") or {}
    cards = []
    for m in (f"hr@{k}", f"mrr@{k}", f"ndcg@{k}", f"coverage@{k}"):
        if m not in metrics:
            continue
        b = base.get(m)
        lift = f"pop {_num(b)} · ×{metrics[m] / b:.2f}" if isinstance(b, (int, float)) and b else f"pop {_num(b)}"
        cards.append(
            f"<div class='card'><div class='l'>{escape(m)}</div><div class='v'>{_num(metrics[m])}</div>"
            f"<div class='l'>{escape(lift)}</div></div>"
        )
    verdict = _badge(passed, "gates passed" if passed else "gates FAILED") if passed is not None else _badge(None)
    timings = report.get("timings") or {}
    ds = report.get("dataset") or {}
    lines = [f"<p>Verdict: {verdict.html}</p>"]
    if ds:
        lines.append(
            f"<p class='muted'>{_num(ds.get('test_targets'))} test targets over "
            f"{_num(ds.get('catalogue_items'))} catalogue items, ranked in full "
            f"(ties count against the target); {_num(ds.get('test_unknown_events'))} test events with unknown items"
            " dropped.</p>"
        )
    if timings:
        lines.append(
            "<p class='muted'>Test timings: "
            + ", ".join(f"{escape(k)} {_num(v, 2)}" for k, v in timings.items())
            + "</p>"
        )
    if not cards:
        return "".join(lines) + "<p class='muted'>No metrics: the test step did not run or the tester was 'none'.</p>"
    return "".join(lines) + f"<div class='cards'>{''.join(cards)}</div>"


def _gates(report: Mapping[str, Any], failures: list[str], warnings: list[str]) -> str:
    parts = []
    gates = report.get("gates") or []
    if gates:
        rows = [
            (
                g.get("metric"),
                g.get("expr"),
                g.get("value"),
                g.get("threshold"),
                _badge(g.get("passed")),
                g.get("reason"),
            )
            for g in gates
        ]
        parts.append(_table(["metric", "gate", "value", "threshold", "verdict", "note"], rows))
    else:
        parts.append("<p class='muted'>No gates configured (tester.gates is empty).</p>")
    if failures:
        parts.append(
            "<h3>Why deployment is blocked</h3><ul>" + "".join(f"<li>{escape(f)}</li>" for f in failures) + "</ul>"
        )
    if warnings:
        parts.append("<h3>Warnings</h3><ul>" + "".join(f"<li>{escape(str(w))}</li>" for w in warnings) + "</ul>")
    return "".join(parts)


def _metrics_table(metrics: Mapping[str, Any], k: int) -> str:
    base = metrics.get("baseline_pop") or {}
    names = [m for m in metrics if isinstance(metrics[m], (int, float)) and "@" in m and m.split("@")[0] in _FAMILIES]
    if not names:
        return "<p class='muted'>No metrics were computed.</p>"
    names.sort(key=lambda m: (_FAMILIES.index(m.split("@")[0]), int(m.split("@")[1])))
    rows = []
    for m in names:
        b = base.get(m)
        ratio = metrics[m] / b if isinstance(b, (int, float)) and b else None
        rows.append((m, metrics[m], b, ratio))
    table = _table(["metric", "model", "pop baseline", "model / pop"], rows)
    acc = [m for m in names if m.endswith(f"@{k}")]
    chart = svg.bar_chart(
        acc, {"model": [metrics[m] for m in acc], "pop": [base.get(m) or 0.0 for m in acc]}, title=f"model vs pop @{k}"
    )
    extra = [
        (m, metrics[m])
        for m in metrics
        if m not in names and m not in ("model", "baseline_pop", "targets") and not isinstance(metrics[m], Mapping)
    ]
    extra_html = "<h3>Behavioural scalars</h3>" + _table(["metric", "value"], extra) if extra else ""
    return f"<div class='charts'><div>{table}</div><div>{chart}</div></div>{extra_html}"


_FAMILIES = ["hr", "mrr", "ndcg", "coverage", "popbias"]


def _slices(result: Mapping[str, Any] | None, k: int) -> str:
    if not isinstance(result, Mapping):
        return "<p class='muted'>Not run (the 'reclist' tester computes slices).</p>"
    parts = []
    for dim, table in result.items():
        parts.append(f"<h3>{escape(dim.replace('_', ' '))}</h3>")
        if not isinstance(table, Mapping) or "skipped" in table:
            parts.append(f"<p class='muted'>Skipped: {escape(str(table.get('skipped', '')))}</p>")
            continue
        groups = list(table)
        chart = svg.bar_chart(
            groups,
            {
                "model": [table[g].get(f"hr@{k}", 0.0) for g in groups],
                "pop": [table[g].get(f"pop_hr@{k}", 0.0) for g in groups],
            },
            title=f"HR@{k} by {dim}",
        )
        rows = [
            (
                g,
                table[g].get("n"),
                table[g].get(f"hr@{k}"),
                table[g].get(f"pop_hr@{k}"),
                table[g].get(f"mrr@{k}"),
                table[g].get(f"pop_mrr@{k}"),
            )
            for g in groups
        ]
        tab = _table(["slice", "targets", f"HR@{k}", f"pop HR@{k}", f"MRR@{k}", f"pop MRR@{k}"], rows)
        parts.append(f"<div class='charts'><div>{chart}</div><div>{tab}</div></div>")
    return "".join(parts)


def _perturbations(result: Mapping[str, Any] | None, k: int) -> str:
    if not isinstance(result, Mapping):
        return "<p class='muted'>Not run (the 'reclist' tester computes perturbations).</p>"
    if "skipped" in result:
        return f"<p class='muted'>Skipped: {escape(str(result['skipped']))}</p>"
    rows, names = [], []
    for name, r in result.items():
        if not isinstance(r, Mapping):
            continue
        if "skipped" in r:
            rows.append((name, _badge(None), None, None, None, None, r["skipped"]))
            continue
        names.append(name)
        rows.append(
            (
                name,
                r.get("n"),
                r.get(f"jaccard@{k}"),
                r.get("unchanged_share"),
                r.get(f"hr@{k}"),
                r.get(f"hr@{k}_perturbed"),
                f"{r.get(f'mrr@{k}_change', 0):+.4f}",
            )
        )
    tab = _table(
        [
            "perturbation",
            "prefixes",
            f"Jaccard@{k}",
            "unchanged lists",
            f"HR@{k}",
            f"HR@{k} perturbed",
            f"MRR@{k} change",
        ],
        rows,
    )
    chart = ""
    if names:
        chart = svg.bar_chart(
            names,
            {
                f"Jaccard@{k}": [result[n][f"jaccard@{k}"] for n in names],
                f"HR@{k}": [result[n][f"hr@{k}"] for n in names],
                "HR perturbed": [result[n][f"hr@{k}_perturbed"] for n in names],
            },
            title="top-K overlap and accuracy under perturbation",
        )
    note = (
        "<p class='muted'>Jaccard 1.0 means the list did not move at all. A sequence-aware model should react "
        "to shuffling; a robust one keeps most of its list when one item is dropped or swapped for a "
        "same-category item.</p>"
    )
    return f"{note}<div class='charts'><div>{tab}</div><div>{chart}</div></div>"


def _less_wrong(result: Mapping[str, Any] | None) -> str:
    if not isinstance(result, Mapping):
        return "<p class='muted'>Not run (the 'reclist' tester computes it).</p>"
    if "skipped" in result and "cooccurrence" not in result:
        return f"<p class='muted'>Skipped: {escape(str(result['skipped']))}</p>"
    rows = []
    for space in ("embedding", "cooccurrence"):
        r = result.get(space)
        if not isinstance(r, Mapping):
            continue
        if "skipped" in r:
            rows.append((space, None, None, None, None, r["skipped"]))
        else:
            rows.append(
                (space, r["top1_similarity"], r["random_similarity"], r["lift"], r["closer_than_random_share"], "")
            )
    intro = (
        f"<p class='muted'>{_num(result.get('misses'))} misses (target outside the top {_num(result.get('k'))}); "
        f"{_num(result.get('sampled'))} sampled. Cosine similarity of the top-1 item to the true item, against a "
        "random catalogue item: a positive lift means the mistakes are at least near the right answer.</p>"
    )
    return intro + _table(
        ["space", "top-1 similarity", "random similarity", "lift", "top-1 closer than random", "note"], rows
    )


def _invariants(result: Mapping[str, Any] | None) -> str:
    if not isinstance(result, Mapping):
        return "<p class='muted'>Not run (the 'reclist' tester checks invariants).</p>"
    rows = []
    for name, r in result.items():
        if not isinstance(r, Mapping):
            continue
        detail = ", ".join(f"{k}={_num(v)}" for k, v in r.items() if k != "passed")
        rows.append((name, _badge(r.get("passed")), detail))
    return _table(["invariant", "verdict", "details"], rows)


def _training(run_dir: Path) -> str:
    cols = read_training_curves(run_dir / "train" / "metrics.csv")
    if not cols:
        return "<p class='muted'>No training curves (train/metrics.csv is absent: a non-neural model).</p>"
    x = cols.get("epoch") or list(range(len(next(iter(cols.values())))))
    x = [v if v is not None else i for i, v in enumerate(x)]
    charts = []
    loss = {k: v for k, v in cols.items() if "loss" in k}
    val = {k: v for k, v in cols.items() if k != "epoch" and k not in loss}
    if loss:
        charts.append(svg.line_chart(x, loss, title="training loss"))
    if val:
        charts.append(svg.line_chart(x, val, title="validation metrics"))
    return f"<div class='charts'>{''.join(charts)}</div>"


def _lineage(lineage: Any) -> str:
    if not isinstance(lineage, Mapping) or not lineage.get("nodes"):
        return "<p class='muted'>No dbt lineage (data/lineage.json is absent: files data source or a resumed run).</p>"
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
    nodes = []
    for n in raw_nodes:
        if str(n["id"]) in test_ids:
            continue
        label = str(n.get("name") or n["id"])
        if tests_per.get(str(n["id"])):
            label += f" ✓{tests_per[str(n['id'])]}"
        nodes.append({"id": str(n["id"]), "label": label, "kind": str(n.get("type", "model"))})
    if len(nodes) > MAX_DAG_NODES:
        return f"<p class='muted'>The dbt DAG has {len(nodes)} nodes; too many to draw (limit {MAX_DAG_NODES}).</p>"
    rows = [
        (
            n.get("name") or n["id"],
            n.get("type"),
            n.get("materialized"),
            tests_per.get(str(n["id"]), 0),
            n.get("description") or "",
        )
        for n in raw_nodes
        if str(n["id"]) not in test_ids
    ]
    legend = "<p class='muted'>Sources and seeds in orange, models in blue; ✓N = N dbt tests on that node.</p>"
    drawing = svg.dag(nodes, edges, title="dbt lineage")
    table = _table(["node", "type", "materialized", "tests", "description"], rows)
    return f"{legend}<div class='scroll'>{drawing}</div>{table}"


def _data(run_dir: Path, report: Mapping[str, Any]) -> str:
    manifest = _read_json(run_dir / "data" / "manifest.json")
    stats = manifest.get("stats") if isinstance(manifest, Mapping) else None
    if not isinstance(stats, Mapping):
        stats = (report.get("dataset") or {}).get("stats")
    parts = []
    if isinstance(stats, Mapping) and stats:
        quarantine = {
            k: v for k, v in stats.items() if "quarantin" in k or k in ("raw_rows", "accepted", "rows_accounted")
        }
        if quarantine:
            parts.append("<h3>Data quality: quarantine</h3>" + _table(["", "value"], _flatten(quarantine)))
        rest = {k: v for k, v in stats.items() if k not in quarantine}
        parts.append("<h3>Dataset statistics</h3>" + _table(["statistic", "value"], _flatten(rest)))
    else:
        parts.append("<p class='muted'>No data statistics (data/manifest.json is absent).</p>")
    parts.append("<h3>dbt lineage</h3>" + _lineage(_read_json(run_dir / "data" / "lineage.json")))
    return "".join(parts)


def _deployment(run_dir: Path) -> str:
    deploy = _read_json(run_dir / "deploy.json")
    if not isinstance(deploy, Mapping):
        return "<p class='muted'>Not deployed (yet): deploy.json is absent.</p>"
    return _table(["", "value"], _flatten(deploy))


def _config(run_dir: Path, settings: Mapping[str, Any] | None) -> str:
    text = read_config(run_dir)
    parts = []
    if settings:
        parts.append("<h3>Tester settings</h3>" + _table(["setting", "value"], _flatten(settings)))
    if text is None:
        parts.append(
            "<p class='muted'>No resolved config (.hydra/config.yaml is absent: library use without Hydra).</p>"
        )
    else:
        summary = "<summary>Resolved config (.hydra/config.yaml, secrets masked)</summary>"
        parts.append(f"<details open>{summary}<pre>{escape(text)}</pre></details>")
    return "".join(parts)


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
        report = _read_json(run_dir / "report" / "report.json") or {}
        metrics = _read_json(run_dir / "metrics.json") or report.get("metrics") or {}
        verdict = _read_json(run_dir / "gates.json") or {}
        passed = verdict.get("passed", report.get("passed"))
        failures = list(verdict.get("failures", report.get("failures", [])))
    on_disk = _read_json(run_dir / "report" / "report.json") or {}
    warnings = list(report.get("warnings") or on_disk.get("warnings") or [])
    settings = report.get("settings") or report.get("metadata") or {}
    k = int(settings.get("k", 20)) if isinstance(settings.get("k", 20), int) else 20
    tests = _tests_by_name(report)
    model = str(metrics.get("model") or (report.get("metadata") or {}).get("model_name") or "model")
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    sections = [
        ("summary", "Summary", _summary(metrics, report, k, None if report.get("skipped") else passed)),
        ("gates", "Gate verdicts", _gates(report, failures, warnings)),
        ("metrics", "Metrics vs baselines", _metrics_table(metrics, k)),
        ("slices", "Slices", _slices(tests.get("slices"), k)),
        ("perturbations", "Perturbations", _perturbations(tests.get("perturbations"), k)),
        ("less-wrong", "Less wrong", _less_wrong(tests.get("less_wrong"))),
        ("invariants", "Invariants", _invariants(tests.get("invariants"))),
        ("training", "Training curves", _training(run_dir)),
        ("data", "Data", _data(run_dir, report)),
        ("deployment", "Deployment", _deployment(run_dir)),
        ("config", "Run configuration", _config(run_dir, report.get("settings"))),
    ]
    nav = "".join(f"<a href='#{a}'>{escape(t)}</a>" for a, t, _ in sections)
    body = "".join(_section(a, t, html) for a, t, html in sections)
    csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{csp}\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>recframe report: {escape(model)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>recframe run report: {escape(model)}</h1>"
        f"<p>run {escape(run_dir.name)} · written {escape(now)}</p></header>"
        f"<nav>{nav}</nav><main>{body}</main></body></html>"
    )


def write_report(run_dir: str | Path, result: TestResult | None = None) -> Path:
    """Write ``run_dir/report/index.html`` atomically and return its path.

    With ``result`` (what a tester just returned) the report shows it; without, it is rebuilt from
    ``report/report.json``, ``metrics.json`` and ``gates.json``, so the pipeline can refresh the page
    after the deploy step (to show ``deploy.json`` or a forced-deploy warning).
    """
    run_dir = Path(run_dir)
    out = run_dir / "report" / "index.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(render_report(run_dir, result), encoding="utf-8")
    tmp.replace(out)
    return out
