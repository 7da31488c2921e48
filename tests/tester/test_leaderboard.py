"""The one leaderboard writer (sweep summary and run comparison): raw CSV, escaped self-contained HTML."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from markupsafe import Markup

from recframe.report.leaderboard import Leaderboard, write_leaderboard


def test_csv_raw_html_escaped_and_linked(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "a"
    (run / "report").mkdir(parents=True)
    (run / "report" / "index.html").write_text("<html></html>")
    hostile = "<script>alert('x')</script>"
    rows = [
        {"rank": 1, "job": "0", "model": hostile, "mrr@20": 0.25, "note": None, "run_dir": str(run)},
        {"rank": 2, "job": "1", "model": "pop", "mrr@20": math.nan, "note": "a,b", "run_dir": str(tmp_path / "gone")},
    ]
    board = Leaderboard(
        title="t & <b>",
        columns=["rank", "job", "model", "mrr@20", "note", "run_dir"],
        rows=rows,
        intro="ranked by mrr@20",
        hidden=("run_dir",),
        link_column="job",
        best={"mrr@20": 0.25},
        row_classes=["best", "failed"],
        charts=[Markup("<svg id='c'></svg>")],
        extra_link=("See", "the comparison", tmp_path / "out" / "compare" / "leaderboard.html"),
    )
    csv_path, html_path = write_leaderboard(board, tmp_path / "out")
    with csv_path.open() as f:
        got = list(csv.DictReader(f))
    assert got[0]["model"] == hostile and got[0]["mrr@20"] == "0.25" and got[0]["note"] == ""
    assert got[1]["mrr@20"] == "" and got[1]["note"] == "a,b" and got[1]["run_dir"] == str(tmp_path / "gone")
    page = html_path.read_text()
    assert "<script" not in page and "&lt;script&gt;" in page
    assert "<title>t &amp; &lt;b&gt;</title>" in page
    assert "<svg id='c'></svg>" in page  # charts are trusted markup
    assert "href='../runs/a/report/index.html'" in page  # relative, and only where the report exists
    assert page.count("<a href=") == 2  # the run with a report, and the comparison link
    assert "<b>0.2500</b>" in page and "class='best'" in page and "class='failed'" in page
    assert "run_dir" not in page  # hidden in the HTML, kept in the CSV
    assert "default-src 'none'" in page
    assert not list((tmp_path / "out").glob("*.tmp")) and not list((tmp_path / "out").glob(".*.tmp"))
