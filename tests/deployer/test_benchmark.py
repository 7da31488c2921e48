"""``benchmarks/serving.py`` runs end to end and ends with the JSON summary line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "serving.py"


def test_help() -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--levels" in out.stdout


@pytest.mark.slow
def test_quick_run_prints_summary() -> None:
    cmd = [sys.executable, str(SCRIPT), "--quick", "--n-items", "2000", "--hidden", "16", "--levels", "2,8"]
    cmd.append("--no-compare-mlserver")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(summary["sides"]) == {"recframe", "inprocess"}
    served, inprocess = summary["sides"]["recframe"], summary["sides"]["inprocess"]
    assert {"wall_s", "cpu_s", "peak_rss_mb", "output_hash"} <= set(served) & set(inprocess)
    # the endpoint answers the probe sessions exactly as the in-process predictor does
    assert served["output_hash"] == inprocess["output_hash"]
    assert served["errors"] == 0 and served["server_alive"] and inprocess["calls_per_s"] > 0
    assert [lv["concurrency"] for lv in summary["levels"]["recframe"]] == [2, 8]
    best = summary["best"]["recframe"]
    assert best["rps"] > 0 and isinstance(best["within_p99"], bool)
