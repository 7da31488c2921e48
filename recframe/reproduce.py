"""``recframe reproduce RUN_DIR``: run a finished run again from what it recorded, and compare.

The re-run uses the run's own overrides (``.hydra/overrides.yaml``, output-directory settings left
out) into a new run directory, then compares every numeric metric of ``metrics.json`` (relative
tolerance), the data fingerprint and the resolved-config hash of ``runinfo.json``, and lists the
packages whose versions differ (a likely cause when numbers move).
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from recframe.interfaces import ConfigError

_RUN_KEYS = ("hydra.run.dir", "hydra.sweep.dir", "hydra.sweep.subdir", "hydra.job.chdir")


def recorded_overrides(run_dir: str | Path) -> list[str]:
    """The command-line overrides the run was started with, without its output-directory settings."""
    path = Path(run_dir) / ".hydra" / "overrides.yaml"
    if not path.exists():
        raise ConfigError("RUN_DIR", str(run_dir), "is not a recframe run directory (.hydra/overrides.yaml missing)")
    items = yaml.safe_load(path.read_text()) or []
    return [o for o in items if o.split("=", 1)[0].lstrip("+~") not in _RUN_KEYS]


def _numbers(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            out.update(_numbers(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = float(v)
    return out


def compare(a_dir: str | Path, b_dir: str | Path, tolerance: float = 1e-6) -> dict[str, Any]:
    """Compare two finished runs' metrics and run records."""
    from recframe.runinfo import read_runinfo

    def metrics(d: str | Path) -> dict[str, float]:
        p = Path(d) / "metrics.json"
        return _numbers(json.loads(p.read_text())) if p.exists() else {}

    ma, mb = metrics(a_dir), metrics(b_dir)
    mismatches: list[str] = []
    table = {}
    for key in sorted(set(ma) | set(mb)):
        x, y = ma.get(key), mb.get(key)
        table[key] = [x, y]
        if x is None or y is None:
            mismatches.append(f"{key} only in one run")
        elif not math.isclose(x, y, rel_tol=tolerance, abs_tol=tolerance):
            mismatches.append(f"{key} {x:g} != {y:g}")
    if not ma:
        mismatches.append(f"{a_dir} has no metrics.json")
    ra, rb = read_runinfo(a_dir), read_runinfo(b_dir)
    for key in ("data_fingerprint", "config_hash"):
        if ra.get(key) and rb.get(key) and ra[key] != rb[key]:
            mismatches.append(f"{key} differs")
    pa, pb = ra.get("packages", {}), rb.get("packages", {})
    packages = {k: [pa.get(k), pb.get(k)] for k in sorted(set(pa) | set(pb)) if pa.get(k) != pb.get(k)}
    return {"metrics": table, "mismatches": mismatches, "packages_changed": packages, "reproduced": not mismatches}


def reproduce(run_dir: str | Path, out_dir: str | Path | None = None, tolerance: float = 1e-6) -> dict[str, Any]:
    """Re-run ``run_dir`` into ``out_dir`` and compare the two (see :func:`compare`)."""
    from recframe.app import run

    src = Path(run_dir)
    overrides = recorded_overrides(src)
    if out_dir is None:
        out_dir = src.with_name(f"{src.name}-reproduce-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ConfigError("--out", str(out), "must be a new or empty directory")
    run(overrides, run_dir=out)
    return {"run_dir": str(src), "rerun_dir": str(out), "overrides": overrides, **compare(src, out, tolerance)}
