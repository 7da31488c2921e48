"""The one leaderboard writer: ``leaderboard.csv`` and ``leaderboard.html`` for any table of runs.

Two tables of runs exist: a sweep's jobs (:mod:`recframe.sweep`, failed jobs included) and a
comparison of finished runs (:mod:`recframe.report.compare`, with lifts over the popularity
baseline and config differences). Both describe their table as a :class:`Leaderboard` and write it
here, so the two files look and behave the same: the CSV for notebooks and spreadsheets, the HTML a
self-contained page (no script, nothing fetched) with each run linked to its ``report/index.html``.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markupsafe import Markup

from recframe import atomic
from recframe.report.rendering import render


@dataclass
class Leaderboard:
    """A table of runs and how to show it.

    Attributes:
        title: the page title.
        columns: the CSV columns, in order (the HTML shows them too, less ``hidden``).
        rows: one dict per run; values are written to the CSV as they are (None and NaN blank).
        intro: one sentence under the title (how the table is ranked).
        hidden: columns left out of the HTML (long or machine-only ones).
        link_column: the column whose cell links to the run's ``report/index.html``.
        run_dir_column: the column holding each row's run directory; when it is also the link
            column, the cell shows the folder's name.
        best: per column, the value to show in bold (the best of that metric).
        fail_values: per column, the value to flag in red (``{"gates": "FAILED"}``).
        row_classes: one CSS class per row (``best``, ``failed`` or empty).
        charts: SVG charts shown above the table.
        extra_link: ``(sentence, label, path)``: a link after the intro, e.g. to a comparison page.
    """

    title: str
    columns: list[str]
    rows: list[dict[str, Any]]
    intro: str = ""
    hidden: Sequence[str] = ()
    link_column: str | None = None
    run_dir_column: str = "run_dir"
    best: Mapping[str, Any] = field(default_factory=dict)
    fail_values: Mapping[str, Any] = field(default_factory=dict)
    row_classes: Sequence[str] | None = None
    charts: Sequence[Markup] = ()
    extra_link: tuple[str, str, Path] | None = None


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _text(v: Any) -> str:
    if _blank(v):
        return ""
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def _href(target: Path, out_dir: Path) -> str:
    return os.path.relpath(target.resolve(), out_dir.resolve())


def to_csv(board: Leaderboard) -> str:
    """The CSV text: every column, raw values, blanks for None and NaN."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=board.columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in board.rows:
        writer.writerow({c: "" if _blank(row.get(c)) else row.get(c) for c in board.columns})
    return buf.getvalue()


def to_html(board: Leaderboard, out_dir: Path) -> str:
    """The HTML page; links are relative to ``out_dir``, where the page is written."""
    shown = [c for c in board.columns if c not in board.hidden]
    rows = []
    for i, row in enumerate(board.rows):
        cells = []
        for c in shown:
            v = row.get(c)
            cell = {
                "text": _text(v),
                "href": None,
                "num": isinstance(v, (int, float)) and not isinstance(v, bool) and not _blank(v),
                "bold": c in board.best and not _blank(v) and v == board.best[c],
                "fail": c in board.fail_values and v == board.fail_values[c],
            }
            if c == board.link_column:
                run_dir = Path(str(row.get(board.run_dir_column)))
                if c == board.run_dir_column:
                    cell["text"] = run_dir.name
                report = run_dir / "report" / "index.html"
                if report.exists():
                    cell["href"] = _href(report, out_dir)
            cells.append(cell)
        rows.append({"cls": board.row_classes[i] if board.row_classes else "", "cells": cells})
    link = None
    if board.extra_link is not None:
        sentence, label, target = board.extra_link
        link = {"sentence": sentence, "label": label, "href": _href(target, out_dir)}
    return render(
        "leaderboard.html.j2",
        title=board.title,
        intro=board.intro,
        link=link,
        charts=list(board.charts),
        columns=shown,
        rows=rows,
    )


def write_leaderboard(board: Leaderboard, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``leaderboard.csv`` and ``leaderboard.html`` into ``out_dir`` atomically; return both paths."""
    out = Path(out_dir)
    csv_path = atomic.write_text(out / "leaderboard.csv", to_csv(board))
    html_path = atomic.write_text(out / "leaderboard.html", to_html(board, out))
    return csv_path, html_path
