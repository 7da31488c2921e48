"""A tracker writing plain files into the run directory: params.json, metrics.csv, and a Lightning CSV log."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from recframe import atomic
from recframe.interfaces import Tracker


class CSVTracker(Tracker):
    """Zero-dependency tracking: everything lands in ``<run_dir>/<subdir>`` as JSON and CSV."""

    def __init__(self, subdir: str = "tracking") -> None:
        self.subdir = subdir
        self.dir: Path | None = None

    def start(self, run_dir: Path, run_id: str) -> None:
        self.dir = Path(run_dir) / self.subdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.run_id = run_id

    def log_params(self, params: dict[str, Any]) -> None:
        if self.dir is not None:
            from recframe.secrets import scrub_params

            atomic.write_json(self.dir / "params.json", scrub_params(params), default=str)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self.dir is None:
            return
        path = self.dir / "metrics.csv"
        new = not path.exists()
        with path.open("a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["step", "name", "value"])
            for k, v in metrics.items():
                w.writerow([step if step is not None else "", k, v])

    def lightning_logger(self) -> Any:
        if self.dir is None:
            return None
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(save_dir=str(self.dir), name="lightning")
