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
    assert {"rps", "p50_ms", "p99_ms", "errors", "inprocess_per_s", "ratio"} <= set(summary)
    assert summary["errors"] == 0 and summary["rps"] > 0 and summary["server_alive"]
