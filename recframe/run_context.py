"""A finished run directory, opened for the commands that act on it (score, promote, reproduce).

It reads the run's own config (``.hydra/config.yaml``, interpolations kept, so credentials come from
the environment at use time rather than from disk), applies ``key=value`` overrides of the command,
and builds the run's data source without running it: the source says which warehouse (and tenant)
the run read from.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from recframe.interfaces import ConfigError, RecframeError


@dataclass
class RunContext:
    """A finished run: its directory, config, data source (not run) and tenant."""

    run_dir: Path
    cfg: DictConfig
    datasource: Any
    tenant: str

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    @property
    def model_dir(self) -> Path:
        """The run's artifact (or the one of the run it resumed from)."""
        here = self.run_dir / "model"
        if (here / "checksums.json").exists():
            return here
        resumed = (self.cfg.get("run") or {}).get("resume_from")
        if resumed and (Path(resumed) / "model" / "checksums.json").exists():
            return Path(resumed) / "model"
        raise RecframeError(f"no model artifact in {self.run_dir}: run its 'train' step first")

    @property
    def data_dir(self) -> Path:
        here = self.run_dir / "data"
        resumed = (self.cfg.get("run") or {}).get("resume_from")
        if not (here / "manifest.json").exists() and resumed:
            return Path(resumed) / "data"
        return here

    def metrics(self) -> dict[str, Any]:
        path = self.run_dir / "metrics.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def gates(self) -> dict[str, Any] | None:
        path = self.run_dir / "gates.json"
        return json.loads(path.read_text()) if path.exists() else None


def open_run(run_dir: str | Path, overrides: Sequence[str] = (), allowed: Sequence[str] = ("score.",)) -> RunContext:
    """Open ``run_dir``; ``overrides`` are ``key=value`` strings whose keys start with one of ``allowed``."""
    d = Path(run_dir)
    cfg_path = d / ".hydra" / "config.yaml"
    if not d.is_dir():
        raise ConfigError("RUN_DIR", str(run_dir), "must be an existing run directory")
    if not cfg_path.exists():
        raise ConfigError("RUN_DIR", str(run_dir), "is not a recframe run directory (.hydra/config.yaml missing)")
    cfg = OmegaConf.load(cfg_path)
    assert isinstance(cfg, DictConfig)
    for item in overrides:
        key, sep, _ = item.partition("=")
        if not sep or not key:
            raise ConfigError(item, None, "overrides are key=value, e.g. score.k=10")
        if not key.startswith(tuple(allowed)):
            raise ConfigError(key, item.partition("=")[2], f"this command accepts only {', '.join(allowed)}* overrides")
    if overrides:
        from omegaconf.errors import OmegaConfBaseException

        try:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
        except OmegaConfBaseException as e:
            raise ConfigError.plain(f"invalid override: {str(e).splitlines()[0]}") from None
    assert isinstance(cfg, DictConfig)
    from recframe.app import instantiate_group

    datasource = instantiate_group("datasource", cfg.get("datasource"))
    tenant = str(getattr(datasource, "tenant", None) or "default")
    return RunContext(run_dir=d, cfg=cfg, datasource=datasource, tenant=tenant)
