"""The HTML run report: every section, graceful degradation, escaping, secrets, and a real browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from recframe.interfaces import Dataset, TestResult
from recframe.report.run_report import render_report, write_report
from recframe.tester.reclist_suite import ReclistTester

SECTIONS = ["summary", "gates", "metrics", "slices", "perturbations", "less-wrong", "invariants", "training", "data"]


def make_run_dir(root: Path) -> Path:
    """A run directory holding every optional file the report reads."""
    run = root / "2026-01-01_00-00-00"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(
        "model:\n  _target_: recframe.model.gru.GRUModel\n  hidden: 100\n"
        "tracker:\n  api_key: sk-live-123456\n  password: hunter2\n"
        "datasource:\n  name: duckdb <script>alert(1)</script>\n"
    )
    (run / "data").mkdir()
    stats = {
        "source": "duckdb",
        "raw_rows": 1000,
        "accepted": 990,
        "quarantined": 10,
        "quarantine_reasons": {"bad_timestamp": 7, "null_sku": 3},
        "train": {"sessions": 500, "events": 2000},
    }
    (run / "data" / "manifest.json").write_text(json.dumps({"files": [], "stats": stats}))
    lineage = {
        "nodes": [
            {"id": "source.rf.raw.events", "type": "source", "name": "events"},
            {"id": "model.rf.stg_events", "type": "model", "name": "stg_events", "materialized": "view"},
            {"id": "model.rf.session_sequences", "type": "model", "name": "session_sequences"},
            {"id": "test.rf.not_null_x", "type": "test", "name": "not_null_x"},
        ],
        "edges": [
            {"from": "source.rf.raw.events", "to": "model.rf.stg_events"},
            {"from": "model.rf.stg_events", "to": "model.rf.session_sequences"},
            {"from": "model.rf.session_sequences", "to": "test.rf.not_null_x"},
        ],
    }
    (run / "data" / "lineage.json").write_text(json.dumps(lineage))
    (run / "train").mkdir()
    (run / "train" / "metrics.csv").write_text(
        "epoch,train_loss,val_mrr@20,val_hr@20\n0,7.1,0.10,0.30\n1,6.2,0.14,0.38\n2,5.9,,0.41\n"
    )
    (run / "deploy.json").write_text(json.dumps({"url": "http://127.0.0.1:8080", "smoke": {"ok": True}}))
    return run


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory, dataset: Dataset, markov) -> tuple[Path, TestResult]:
    run = make_run_dir(tmp_path_factory.mktemp("runs"))
    tester = ReclistTester(gates={"hr@20": ">= 1.2 * baseline_pop", "popbias@20": "< 0.1"}, n_samples=300)
    return run, tester.run(markov, dataset, run / "report")


def test_every_section_present(full_run) -> None:
    run, result = full_run
    page = (run / "report" / "index.html").read_text()
    for anchor in SECTIONS:
        assert f"id='{anchor}'" in page
    assert "Not run" not in page and "absent" not in page  # every source was there
    assert "bad_timestamp" in page and "quarantined" in page  # quarantine counts
    assert "session_sequences" in page and "✓1" in page  # lineage DAG with its test count
    assert "training loss" in page and "validation metrics" in page
    assert "popbias@20 &lt; 0.1 FAILED" in page  # the failing gate is shown
    assert "http://127.0.0.1:8080" in page


def test_self_contained_and_safe(full_run) -> None:
    run, _ = full_run
    page = (run / "report" / "index.html").read_text()
    assert "<script" not in page  # no JS at all: the config's <script> is escaped
    assert "&lt;script&gt;" in page
    assert not re.search(r"(src|href)=['\"](https?:)?//", page)  # nothing fetched from anywhere
    assert "sk-live-123456" not in page and "hunter2" not in page  # secrets masked
    assert "default-src 'none'" in page


def test_degrades_without_run_files(tmp_path: Path, dataset: Dataset, markov) -> None:
    result = ReclistTester(gates={}, n_samples=100, html=False).run(markov, dataset, tmp_path / "report")
    page = render_report(tmp_path, result)
    assert "train/metrics.csv is absent" in page and "lineage.json is absent" in page
    assert ".hydra/config.yaml is absent" in page and "deploy.json is absent" in page
    # data stats fall back to what the tester saw
    assert "bad_ts" in page


def test_metrics_tester_report_and_rebuild_from_disk(tmp_path: Path, dataset: Dataset, markov) -> None:
    from recframe.tester.metrics import MetricsTester

    result = MetricsTester().run(markov, dataset, tmp_path / "report")
    (tmp_path / "metrics.json").write_text(json.dumps(result.metrics))
    page = write_report(tmp_path).read_text()  # no result: rebuilt from the files
    assert "Not run (the 'reclist' tester computes slices)" in page
    assert "hr@20" in page


def test_empty_run_dir(tmp_path: Path) -> None:
    page = write_report(tmp_path).read_text()
    assert "No metrics" in page


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(_chromium() is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_renders_in_headless_chromium(full_run, tmp_path: Path) -> None:
    """Opens the report from file:// in a real headless browser: no console errors, a screenshot."""
    run, _ = full_run
    page = run / "report" / "index.html"
    shot = Path(os.environ.get("RECFRAME_REPORT_SCREENSHOT", tmp_path / "report.png"))
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    shot_run = subprocess.run(
        [_chromium(), *flags, "--window-size=1300,9000", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.exists() and shot.stat().st_size > 10_000, shot_run.stderr[-2000:]
    dom = subprocess.run(
        [_chromium(), *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    )
    console = [line for line in (shot_run.stderr + dom.stderr).splitlines() if "CONSOLE" in line or "Refused" in line]
    assert not console, console
    for anchor in SECTIONS:
        assert f'id="{anchor}"' in dom.stdout
    assert dom.stdout.count("<svg") >= 8  # the charts survived parsing


def test_none_tester_report_says_skipped(tmp_path: Path, dataset: Dataset, markov) -> None:
    from recframe.tester.none import NoneTester

    result = NoneTester().run(markov, dataset, tmp_path / "report")
    page = render_report(tmp_path, result)
    assert "badge skip" in page and "gates passed" not in page
