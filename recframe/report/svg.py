"""Tiny SVG charts: grouped bars, lines, and a layered DAG.

matplotlib is not a dependency (reclist 2.1.0 pins a version that breaks numpy 2, and the report must
work on a minimal install), and the report has to be one self-contained file. Inline SVG is text,
scales cleanly, needs no image decoding and cannot be a broken image, so the few chart types the
report needs are drawn here directly. Every label is XML-escaped: SKUs, categories and dbt node names
come from data; so the charts are returned as :class:`markupsafe.Markup`, which the report templates
insert as they are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

from markupsafe import Markup

PALETTE = ("#3366cc", "#ff9900", "#109618", "#dc3912", "#990099", "#0099c6", "#dd4477", "#66aa00")
FONT = "font-family='system-ui, sans-serif' font-size='11'"


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


def _legend(series: Sequence[str], x: float, y: float) -> list[str]:
    parts, xx = [], x
    for i, name in enumerate(series):
        parts.append(f"<rect x='{xx}' y='{y - 9}' width='10' height='10' fill='{PALETTE[i % len(PALETTE)]}'/>")
        label = str(name)[:24]
        parts.append(f"<text x='{xx + 14}' y='{y}' {FONT}>{escape(label)}</text>")
        xx += 30 + 7 * len(label)
    return parts


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
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' viewBox='0 0 {width} {height}' "
        f"role='img' aria-label='{escape(title, quote=True)}'>",
        f"<text x='{left}' y='14' {FONT} font-weight='bold'>{escape(title)}</text>",
    ]
    parts += _legend(names, left, 30)
    for i in range(5):
        yv = top * i / 4
        y = top_pad + ph - ph * i / 4
        parts.append(f"<line x1='{left}' x2='{left + pw}' y1='{y:.1f}' y2='{y:.1f}' stroke='#ddd'/>")
        parts.append(f"<text x='{left - 4}' y='{y + 4:.1f}' text-anchor='end' {FONT}>{_fmt(yv)}</text>")
    if y_label:
        parts.append(
            f"<text x='12' y='{top_pad + ph / 2}' transform='rotate(-90 12 {top_pad + ph / 2})' "
            f"text-anchor='middle' {FONT}>{escape(y_label)}</text>"
        )
    n_groups = max(1, len(groups))
    gw = pw / n_groups
    bw = max(2.0, gw * 0.8 / max(1, len(names)))
    for g, label in enumerate(groups):
        gx = left + g * gw + gw * 0.1
        for s, vals in enumerate(values):
            val = vals[g] if g < len(vals) else 0.0
            h = ph * max(0.0, val) / top
            x = gx + s * bw
            y = top_pad + ph - h
            color = PALETTE[s % len(PALETTE)]
            parts.append(
                f"<rect x='{x:.1f}' y='{y:.1f}' width='{bw - 1:.1f}' height='{h:.1f}' fill='{color}'>"
                f"<title>{escape(str(label))} / {escape(str(names[s]))}: {_fmt(val)}</title></rect>"
            )
        text = escape(str(label)[:14])
        parts.append(
            f"<text x='{left + g * gw + gw / 2:.1f}' y='{top_pad + ph + 14}' text-anchor='middle' {FONT}>{text}</text>"
        )
    parts.append(f"<line x1='{left}' x2='{left + pw}' y1='{top_pad + ph}' y2='{top_pad + ph}' stroke='#333'/>")
    parts.append("</svg>")
    return Markup("".join(parts))


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

    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' viewBox='0 0 {width} {height}' "
        f"role='img' aria-label='{escape(title, quote=True)}'>",
        f"<text x='{left}' y='14' {FONT} font-weight='bold'>{escape(title)}</text>",
    ]
    parts += _legend(names, left, 30)
    for i in range(5):
        yv = lo + (hi - lo) * i / 4
        parts.append(f"<line x1='{left}' x2='{left + pw}' y1='{py(yv):.1f}' y2='{py(yv):.1f}' stroke='#ddd'/>")
        parts.append(f"<text x='{left - 4}' y='{py(yv) + 4:.1f}' text-anchor='end' {FONT}>{_fmt(yv)}</text>")
    for v in sorted(set(xs))[:: max(1, len(set(xs)) // 10)]:
        parts.append(f"<text x='{px(v):.1f}' y='{top_pad + ph + 14}' text-anchor='middle' {FONT}>{_fmt(v)}</text>")
    parts.append(f"<text x='{left + pw / 2}' y='{height - 4}' text-anchor='middle' {FONT}>{escape(x_label)}</text>")
    for s, name in enumerate(names):
        color = PALETTE[s % len(PALETTE)]
        seg: list[str] = []
        segments: list[list[str]] = []
        for xv, yv in zip(xs, series[name], strict=False):
            if yv is None or not math.isfinite(float(yv)):
                if seg:
                    segments.append(seg)
                seg = []
                continue
            seg.append(f"{px(xv):.1f},{py(float(yv)):.1f}")
        if seg:
            segments.append(seg)
        for pts in segments:
            parts.append(f"<polyline fill='none' stroke='{color}' stroke-width='2' points='{' '.join(pts)}'/>")
            for p in pts:
                cx, cy = p.split(",")
                parts.append(f"<circle cx='{cx}' cy='{cy}' r='2.5' fill='{color}'/>")
    parts.append(f"<line x1='{left}' x2='{left + pw}' y1='{top_pad + ph}' y2='{top_pad + ph}' stroke='#333'/>")
    parts.append("</svg>")
    return Markup("".join(parts))


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
    colors = {"source": "#fde9c8", "seed": "#fde9c8", "model": "#d6e4fb", "test": "#e2f3dc", "exposure": "#f3dcef"}
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' viewBox='0 0 {width} {height}' "
        f"role='img' aria-label='{escape(title, quote=True)}'>",
        "<defs><marker id='arrow' viewBox='0 0 10 10' refX='10' refY='5' markerWidth='7' markerHeight='7' "
        "orient='auto-start-reverse'><path d='M 0 0 L 10 5 L 0 10 z' fill='#555'/></marker></defs>",
        f"<text x='{pad}' y='16' {FONT} font-weight='bold'>{escape(title)}</text>",
    ]
    for b, ps in parents.items():
        for a in ps:
            if depth.get(a, 0) >= depth.get(b, 0):
                continue
            ax, ay = pos[a][0] + box_w, pos[a][1] + box_h / 2
            bx, by = pos[b][0], pos[b][1] + box_h / 2
            mx = (ax + bx) / 2
            parts.append(
                f"<path d='M {ax:.1f} {ay:.1f} C {mx:.1f} {ay:.1f}, {mx:.1f} {by:.1f}, {bx:.1f} {by:.1f}' "
                "fill='none' stroke='#555' marker-end='url(#arrow)'/>"
            )
    for node, (x, y) in pos.items():
        meta = by_id[node]
        kind = str(meta.get("kind", "model"))
        label = str(meta.get("label") or node)
        short = label if len(label) <= 26 else label[:25] + "…"
        parts.append(
            f"<g><title>{escape(node)} ({escape(kind)})</title>"
            f"<rect x='{x}' y='{y}' width='{box_w}' height='{box_h}' rx='5' fill='{colors.get(kind, '#eee')}' "
            "stroke='#777'/>"
            f"<text x='{x + box_w / 2}' y='{y + box_h / 2 + 4}' text-anchor='middle' {FONT}>{escape(short)}</text></g>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
