"""benchmarks/incremental_build.py at a small size: its check compares an incremental build with a full
refresh, and a kept lake is reused by the next run with the same settings (never by another)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "incremental_build.py"


def _run(work: Path, events: int) -> tuple[dict, str]:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--events", str(events), "--items", "300", "--days", "6", "--check",
         "--work", str(work)],
        check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def test_incremental_benchmark_checks_and_reuses_its_lake(tmp_path):
    work = tmp_path / "work"
    first, log = _run(work, 20_000)
    assert "writing the lake" in log and first["incremental_equals_full_refresh"] is True
    meta = json.loads((work / "lake.json").read_text())
    assert meta["counts"] == {"rows": first["events"], "last_day_rows": first["last_day_events"]}
    assert meta["last_day_partitions"] and all((work / "lake" / p).is_dir() for p in meta["last_day_partitions"])

    again, log = _run(work, 20_000)  # the same settings: the lake is reused, the builds start over
    assert "reusing the lake" in log and "writing the lake" not in log
    assert again["incremental_equals_full_refresh"] is True
    assert again["events"] == first["events"] and again["last_day_events"] == first["last_day_events"]
    for side in ("first_build", "incremental_build", "full_refresh"):
        assert again["sides"][side]["output_hash"] == first["sides"][side]["output_hash"], side

    other, log = _run(work, 30_000)  # other settings: written again
    assert "writing the lake" in log and other["events"] != first["events"]
