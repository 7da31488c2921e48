"""Tiny SVG charts: grouped bars, lines, and a layered DAG.

matplotlib is not a dependency (reclist 2.1.0 pins a version that breaks numpy 2, and the report must
work on a minimal install), and the report has to be one self-contained file. Inline SVG is text,
scales cleanly, needs no image decoding and cannot be a broken image, so the few chart types the
report needs are drawn here directly: this module computes the geometry, and the autoescaping
template ``templates/charts.svg.j2`` writes the markup, so labels from data (SKUs, categories, dbt
node names) are always escaped. Each chart is returned as :class:`markupsafe.Markup`, which the
report templates insert as it is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup

from recframe.report.rendering import environment

PALETTE = ("#3366cc", "#ff9900", "#109618", "#dc3912", "#990099", "#0099c6", "#dd4477", "#66aa00")
DAG_COLORS = {"source": "#fde9c8", "seed": "#fde9c8", "model": "#d6e4fb", "test": "#e2f3dc", "exposure": "#f3dcef"}


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if float(v).is_integer() and abs(v) < 1e6:
        return f"{int(v)}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def _nice_max(v: float) -> float:
    if v <= 0 or not math.isfinite(v):
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * exp:
            return m * exp
    return 10 * exp


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _legend(series: Sequence[str], x: float, y: float) -> list[dict[str, Any]]:
    out, xx = [], x
    for i, name in enumerate(series):
        label = str(name)[:24]
        out.append({"x": xx, "y": y, "color": _color(i), "label": label})
        xx += 30 + 7 * len(label)
    return out


def _draw(macro: str, **context: Any) -> Markup:
    return Markup(getattr(environment().get_template("charts.svg.j2").module, macro)(context))


def bar_chart(
    groups: Sequence[str],
    series: Mapping[str, Sequence[float]],
    title: str = "",
    width: int = 560,
    height: int = 240,
    y_label: str = "",
) -> Markup:
    """Grouped vertical bars: one group per label, one bar per series (e.g. model vs pop per slice)."""
    names = list(series)
    values = [[float(x) if x is not None and math.isfinite(float(x)) else 0.0 for x in series[n]] for n in names]
    top = _nice_max(max([max(v, default=0.0) for v in values], default=0.0))
    left, right, top_pad, bottom = 48, 10, 44, 42
    pw, ph = width - left - right, height - top_pad - bottom
    grid = []
    for i in range(5):
        y = top_pad + ph - ph * i / 4
        grid.append({"y": f"{y:.1f}", "label_y": f"{y + 4:.1f}", "label": _fmt(top * i / 4)})
    n_groups = max(1, len(groups))
    gw = pw / n_groups
    bw = max(2.0, gw * 0.8 / max(1, len(names)))
    columns = []
    for g, label in enumerate(groups):
        gx = left + g * gw + gw * 0.1
        bars = []
        for s, vals in enumerate(values):
            val = vals[g] if g < len(vals) else 0.0
            h = ph * max(0.0, val) / top
            bars.append(
                {
                    "x": f"{gx + s * bw:.1f}",
                    "y": f"{top_pad + ph - h:.1f}",
                    "w": f"{bw - 1:.1f}",
                    "h": f"{h:.1f}",
                    "color": _color(s),
                    "tip": f"{label} / {names[s]}: {_fmt(val)}",
                }
            )
        columns.append({"bars": bars, "x": f"{left + g * gw + gw / 2:.1f}", "text": str(label)[:14]})
    return _draw(
        "bar_chart",
        width=width,
        height=height,
        title=title,
        left=left,
        plot_right=left + pw,
        baseline=top_pad + ph,
        mid=top_pad + ph / 2,
        y_label=y_label,
        legend=_legend(names, left, 30),
        grid=grid,
        groups=columns,
    )


def line_chart(
    x: Sequence[float],
    series: Mapping[str, Sequence[float | None]],
    title: str = "",
    width: int = 560,
    height: int = 240,
    x_label: str = "epoch",
) -> Markup:
    """Lines over a shared x axis (training curves); missing points (None/NaN) break the line."""
    names = list(series)
    xs = [float(v) for v in x]
    finite = [float(v) for n in names for v in series[n] if v is not None and math.isfinite(float(v))]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    lo = min(lo, 0.0) if lo >= 0 else lo
    hi = _nice_max(hi) if hi > 0 else hi + 1.0
    x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x1 == x0:
        x1 = x0 + 1
    left, right, top_pad, bottom = 48, 24, 44, 36
    pw, ph = width - left - right, height - top_pad - bottom

    def px(v: float) -> float:
        return left + pw * (v - x0) / (x1 - x0)

    def py(v: float) -> float:
        return top_pad + ph - ph * (v - lo) / ((hi - lo) or 1.0)

    grid = []
    for i in range(5):
        yv = lo + (hi - lo) * i / 4
        grid.append({"y": f"{py(yv):.1f}", "label_y": f"{py(yv) + 4:.1f}", "label": _fmt(yv)})
    ticks = [{"x": f"{px(v):.1f}", "text": _fmt(v)} for v in sorted(set(xs))[:: max(1, len(set(xs)) // 10)]]
    lines = []
    for s, name in enumerate(names):
        seg: list[tuple[str, str]] = []
        for xv, yv in zip(xs, series[name], strict=False):
            if yv is None or not math.isfinite(float(yv)):
                if seg:
                    lines.append({"color": _color(s), "points": seg})
                seg = []
                continue
            seg.append((f"{px(xv):.1f}", f"{py(float(yv)):.1f}"))
        if seg:
            lines.append({"color": _color(s), "points": seg})
    return _draw(
        "line_chart",
        width=width,
        height=height,
        title=title,
        left=left,
        plot_right=left + pw,
        baseline=top_pad + ph,
        x_label=x_label,
        x_label_x=left + pw / 2,
        legend=_legend(names, left, 30),
        grid=grid,
        ticks=ticks,
        lines=lines,
    )


def dag(nodes: Sequence[Mapping[str, str]], edges: Sequence[tuple[str, str]], title: str = "") -> Markup:
    """A left-to-right layered drawing of a DAG (the dbt lineage): sources left, marts right.

    ``nodes`` are ``{"id", "label", "kind"}``; a node's column is its longest path from a root, so
    every edge points rightwards. Cycles (which a dbt DAG cannot have) are cut, not looped forever.
    """
    ids = [str(n["id"]) for n in nodes]
    known = set(ids)
    parents: dict[str, list[str]] = {i: [] for i in ids}
    for a, b in edges:
        if a in known and b in known and a != b:
            parents[b].append(a)
    depth: dict[str, int] = {}

    def level(node: str, stack: frozenset[str]) -> int:
        if node in depth:
            return depth[node]
        ps = [p for p in parents[node] if p not in stack]
        d = 0 if not ps else 1 + max(level(p, stack | {node}) for p in ps)
        depth[node] = d
        return d

    for i in ids:
        level(i, frozenset())
    cols: dict[int, list[str]] = {}
    for i in ids:
        cols.setdefault(depth[i], []).append(i)
    box_w, box_h, gap_x, gap_y, pad = 170, 30, 60, 14, 20
    n_rows = max((len(c) for c in cols.values()), default=1)
    width = pad * 2 + len(cols) * box_w + max(0, len(cols) - 1) * gap_x
    height = pad * 2 + 20 + n_rows * (box_h + gap_y)
    pos: dict[str, tuple[float, float]] = {}
    for c, members in cols.items():
        for r, node in enumerate(members):
            pos[node] = (pad + c * (box_w + gap_x), pad + 20 + r * (box_h + gap_y))
    by_id = {str(n["id"]): n for n in nodes}
    paths = []
    for b, ps in parents.items():
        for a in ps:
            if depth.get(a, 0) >= depth.get(b, 0):
                continue
            ax, ay = pos[a][0] + box_w, pos[a][1] + box_h / 2
            bx, by = pos[b][0], pos[b][1] + box_h / 2
            mx = (ax + bx) / 2
            paths.append(f"M {ax:.1f} {ay:.1f} C {mx:.1f} {ay:.1f}, {mx:.1f} {by:.1f}, {bx:.1f} {by:.1f}")
    boxes = []
    for node, (x, y) in pos.items():
        kind = str(by_id[node].get("kind", "model"))
        label = str(by_id[node].get("label") or node)
        boxes.append(
            {
                "id": node,
                "kind": kind,
                "x": x,
                "y": y,
                "cx": x + box_w / 2,
                "cy": y + box_h / 2 + 4,
                "fill": DAG_COLORS.get(kind, "#eee"),
                "text": label if len(label) <= 26 else label[:25] + "…",
            }
        )
    return _draw(
        "dag",
        width=width,
        height=height,
        title=title,
        pad=pad,
        box_w=box_w,
        box_h=box_h,
        paths=paths,
        boxes=boxes,
    )
