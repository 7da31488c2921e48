"""The run report: ``report/index.html``, one self-contained file readable offline.

(First version: metrics and gates; the full report is being built.)
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from recframe.interfaces import TestResult


def write_report(run_dir: str | Path, result: TestResult | None = None) -> Path:
    """Write ``run_dir/report/index.html`` from the test result and whatever the run directory holds."""
    run_dir = Path(run_dir)
    out = run_dir / "report" / "index.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, Any] = result.metrics if result else {}
    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in metrics.items())
    head = "<!doctype html><html><head><meta charset='utf-8'><title>recframe report</title></head>"
    body = f"{head}<body><table>{rows}</table></body></html>"
    out.write_text(body)
    return out
