"""Reading a run directory for the reports: each reader returns None when its file is absent or
unreadable, so a page degrades section by section instead of failing (see docs/architecture.md for
what a run directory holds)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from recframe.secrets import mask_secrets


def read_json(path: Path) -> Any:
    """The parsed JSON file, or None when it is absent or not JSON."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_yaml(path: Path) -> Any:
    """The parsed YAML file, or None when it is absent or damaged (a damaged config must not hide
    the run's metrics)."""
    if not path.exists():
        return None
    try:
        import yaml

        return yaml.safe_load(path.read_text())
    except Exception:
        return None


def read_training_curves(path: Path) -> dict[str, list[float | None]] | None:
    """Columns of ``train/metrics.csv`` as float lists (None for blanks); None when absent or empty."""
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return None
    if not rows:
        return None
    cols: dict[str, list[float | None]] = {}
    for key in rows[0]:
        vals: list[float | None] = []
        for r in rows:
            try:
                x = float(r.get(key) or "nan")
                vals.append(x if math.isfinite(x) else None)
            except ValueError:
                vals.append(None)
        cols[key] = vals
    return cols


def read_config(run_dir: Path) -> str | None:
    """The resolved Hydra config as YAML text with secrets masked (None when absent)."""
    path = run_dir / ".hydra" / "config.yaml"
    if not path.exists():
        return None
    try:
        import yaml

        return yaml.safe_dump(mask_secrets(yaml.safe_load(path.read_text())), sort_keys=False)
    except Exception:  # an unreadable config must not cost the report: show that it is unreadable
        return "# config.yaml could not be parsed"
