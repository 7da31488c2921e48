"""What a run directory records so that the run can be identified and repeated.

``config.resolved.yaml`` is the composed config with every interpolation resolved and secrets masked;
``runinfo.json`` holds the package versions, the git commit of the working directory (when it is a
repository), the seeds, the data fingerprint (a hash of the split contents) and a hash of the
resolved config. The model registry copies these fields, and ``recframe reproduce`` compares them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import platform
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf, open_dict

RESOLVED_CONFIG = "config.resolved.yaml"
RUNINFO = "runinfo.json"
# distributions whose versions decide a run's numbers or its reading of the data
PACKAGES = (
    "recframe", "torch", "numpy", "pandas", "pyarrow", "duckdb", "dbt-core", "dbt-duckdb", "hydra-core",
    "omegaconf", "lightning", "scipy", "snowflake-connector-python", "dbt-snowflake", "mlflow-skinny",
)  # fmt: skip
# run-specific values that must not change the config hash
_RUN_SPECIFIC = ("paths.output_dir", "run.resume_from")


def mask_secrets(node: Any, prefix: str = "") -> Any:
    """``node`` (nested dicts/lists) with secrets masked by the project's one masking rule.

    Every leaf goes through :func:`recframe.secrets.scrub_params`: a value under a
    secret-looking key is replaced, and a secret environment value found inside any value too.
    """
    from recframe.secrets import scrub_params

    if isinstance(node, Mapping):
        return {k: mask_secrets(v, f"{prefix}{k}.") for k, v in node.items()}
    if isinstance(node, list):
        return [mask_secrets(v, prefix) for v in node]
    key = prefix.rstrip(".") or "value"
    return scrub_params({key: node})[key]


def resolved_config(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """The config without Hydra's own section, every interpolation resolved, secrets masked."""
    c = copy.deepcopy(cfg)
    with open_dict(c):
        c.pop("hydra", None)
        if "paths" in c and c.paths is not None:
            c.paths.output_dir = str(Path(run_dir).resolve())  # ${hydra:...} has no value outside a job
    plain = OmegaConf.to_container(c, resolve=True, throw_on_missing=False)
    return mask_secrets(plain)


def config_hash(resolved: Mapping[str, Any]) -> str:
    """A hash of the resolved config that two runs of the same settings share (run paths left out)."""
    c = json.loads(json.dumps(resolved, default=str))
    for dotted in _RUN_SPECIFIC:
        parent, _, leaf = dotted.rpartition(".")
        node = c.get(parent) if parent else c
        if isinstance(node, dict):
            node.pop(leaf, None)
    return "sha256:" + hashlib.sha256(json.dumps(c, sort_keys=True).encode()).hexdigest()


def package_versions() -> dict[str, str]:
    """Installed versions of :data:`PACKAGES` (missing ones left out) and of Python."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit(cwd: str | Path = ".") -> dict[str, Any] | None:
    """The commit of the repository holding ``cwd`` and whether its tree has changes; None outside git."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty}


def data_fingerprint(data_dir: str | Path) -> str | None:
    """A hash of the split *contents* (not the parquet bytes, which carry writer metadata)."""
    import pandas as pd

    d = Path(data_dir)
    h = hashlib.sha256()
    found = False
    for name in ("train", "valid", "test"):
        path = d / f"{name}.parquet"
        if not path.exists():
            continue
        found = True
        df = pd.read_parquet(path)
        h.update(name.encode())
        h.update(",".join(map(str, df.columns)).encode())
        h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return "sha256:" + h.hexdigest() if found else None


def seeds(resolved: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every ``seed`` setting of the resolved config, by dotted key."""
    out: dict[str, Any] = {}
    for k, v in resolved.items():
        if isinstance(v, Mapping):
            out.update(seeds(v, f"{prefix}{k}."))
        elif "seed" in str(k).lower():
            out[f"{prefix}{k}"] = v
    return out


def write_resolved_config(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """Write ``config.resolved.yaml`` into the run directory; return the resolved dict."""
    resolved = resolved_config(cfg, run_dir)
    path = Path(run_dir) / RESOLVED_CONFIG
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(resolved, sort_keys=False, default_flow_style=None))
    tmp.replace(path)
    return resolved


def write_runinfo(run_dir: str | Path, resolved: Mapping[str, Any], data_dir: str | Path | None = None) -> dict:
    """Write ``runinfo.json``: packages, git commit, seeds, data fingerprint and config hash."""
    from recframe.pipeline import write_json

    run_dir = Path(run_dir)
    info = {
        "run_id": run_dir.name,
        "config_hash": config_hash(resolved),
        "data_fingerprint": data_fingerprint(data_dir or run_dir / "data"),
        "seeds": seeds(resolved),
        "git": git_commit(),
        "packages": package_versions(),
    }
    write_json(run_dir / RUNINFO, info)
    return info


def read_runinfo(run_dir: str | Path) -> dict[str, Any]:
    """The run's ``runinfo.json`` (an empty dict for runs that predate it)."""
    path = Path(run_dir) / RUNINFO
    return json.loads(path.read_text()) if path.exists() else {}
