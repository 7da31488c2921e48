"""Comet tracking that is online only when the user gave it a key.

With ``COMET_API_KEY`` set (``tracker.api_key``) the run streams to an online ``comet_ml.Experiment``.
Without one it writes an ``OfflineExperiment`` into ``<run_dir>/<offline_subdir>/<key>.zip``, which
``comet upload`` can send later, so a laptop or CI run never needs an account or the network.

Every one of Comet's automatic collectors is switched off: the command line (which may hold a
``datasource.password=...`` override), environment details, stdout capture, source code and git
patches could each carry a secret off the machine. Only what the pipeline logs explicitly is sent,
and that goes through :func:`recframe.secrets.scrub_params` first.

Lightning's ``CometLogger`` is bound to the *same* experiment (one run, one experiment), and it is
never built with ``online=False``: that flag disables the experiment, so nothing would be logged.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from recframe.interfaces import ConfigError, RecframeError, Tracker
from recframe.secrets import scrub_params
from recframe.tracker.values import numeric_metrics

log = logging.getLogger("recframe")

# Comet's collectors that read the process (argv, env, stdout, code, git): all off, see the module doc.
_QUIET = {
    "log_code": False,
    "log_graph": False,
    "parse_args": False,
    "auto_param_logging": False,
    "auto_metric_logging": False,
    "auto_output_logging": False,
    "log_env_details": False,
    "log_env_gpu": False,
    "log_env_cpu": False,
    "log_env_host": False,
    "log_env_network": False,
    "log_env_disk": False,
    "log_git_metadata": False,
    "log_git_patch": False,
    "display_summary_level": 0,
}


class CometTracker(Tracker):
    """Logs params, metrics and report files to Comet; offline archive in the run dir without a key.

    Args:
        project_name: Comet project.
        workspace: Comet workspace (None: the key's default workspace).
        api_key: Comet API key; None keeps the run offline. Configs take it from ``COMET_API_KEY``
            so it is never written into a run directory.
        offline_subdir: where, inside the run directory, the offline archive is written.
        online: None decides from ``api_key``; False forces offline even with a key.
        tags: extra tags besides the run id.
    """

    def __init__(
        self,
        project_name: str = "recframe",
        workspace: str | None = None,
        api_key: str | None = None,
        offline_subdir: str = "comet",
        online: bool | None = None,
        tags: list[str] | None = None,
    ) -> None:
        if not isinstance(project_name, str) or not project_name:
            raise ConfigError("tracker.project_name", project_name, "must be a non-empty string")
        self.project_name = project_name
        self.workspace = workspace
        self._api_key = api_key or None  # private: never part of repr or logged params
        if not offline_subdir or Path(offline_subdir).is_absolute() or ".." in Path(offline_subdir).parts:
            raise ConfigError("tracker.offline_subdir", offline_subdir, "must be a relative folder inside the run dir")
        self.offline_subdir = offline_subdir
        self.online = bool(self._api_key) if online is None else bool(online and self._api_key)
        if online and not self._api_key:
            log.warning("tracker.online=true but no COMET_API_KEY: logging offline")
        self.tags = list(tags or [])
        self.experiment: Any = None
        self.offline_dir: Path | None = None
        self._logger: Any = None

    def __repr__(self) -> str:
        mode = "online" if self.online else "offline"
        return f"CometTracker(project_name={self.project_name!r}, {mode})"

    # ------------------------------------------------------------------ lifecycle
    def start(self, run_dir: Path, run_id: str) -> None:
        """Create the experiment (no network when offline) and tag it with the run id."""
        # Must be set before comet_ml is imported: its auto-logging patches torch at import time.
        os.environ.setdefault("COMET_DISABLE_AUTO_LOGGING", "1")
        if not self.online:
            os.environ["COMET_START_ONLINE"] = "0"
        try:
            import comet_ml
        except ImportError:
            raise RecframeError("tracker=comet needs comet-ml: pip install 'recframe[comet]'") from None
        self.offline_dir = Path(run_dir) / self.offline_subdir
        if self.online:
            self.experiment = comet_ml.Experiment(
                api_key=self._api_key, project_name=self.project_name, workspace=self.workspace, **_QUIET
            )
        else:
            self.offline_dir.mkdir(parents=True, exist_ok=True)
            self.experiment = comet_ml.OfflineExperiment(
                project_name=self.project_name,
                workspace=self.workspace,
                offline_directory=str(self.offline_dir),
                **_QUIET,
            )
        self.experiment.set_name(run_id)
        self.experiment.add_tags([run_id, *self.tags])
        self.experiment.log_other("recframe_run_id", run_id)

    def log_params(self, params: dict[str, Any]) -> None:
        if self.experiment is not None:
            clean = scrub_params(params)
            self.experiment.log_parameters({k: ("null" if v is None else v) for k, v in clean.items()})

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self.experiment is not None:
            self.experiment.log_metrics(numeric_metrics(metrics), step=step)

    def log_artifact(self, path: Path) -> None:
        """Attach a file (the report, metrics.json) as an asset; offline it goes into the archive."""
        if self.experiment is not None and Path(path).is_file():
            self.experiment.log_asset(str(path), file_name=Path(path).name)

    def lightning_logger(self) -> Any:
        """A ``CometLogger`` writing into this run's experiment (not a second one)."""
        if self.experiment is None:
            return None
        if self._logger is None:
            from lightning.pytorch.loggers import CometLogger

            # comet_ml.start() inside CometLogger reuses the running experiment when the key, project
            # and mode match. Offline, the mode comes from COMET_START_ONLINE=0, never online=False.
            kwargs: dict[str, Any] = {"project": self.project_name, "workspace": self.workspace}
            if self.online:
                # explicit: COMET_START_ONLINE=0 left by an earlier offline run must not flip it offline
                kwargs.update(api_key=self._api_key, online=True)
            else:
                kwargs["offline_directory"] = str(self.offline_dir)
            logger = CometLogger(experiment_key=self.experiment.get_key(), mode="get", **kwargs)
            if logger.experiment is not self.experiment:
                log.warning("Comet: Lightning could not attach to the run's experiment; training curves not logged")
                return None
            self._logger = logger
        return self._logger

    def close(self) -> None:
        """End the experiment: offline, this writes ``<run_dir>/<offline_subdir>/<key>.zip``."""
        if self.experiment is None:
            return
        try:
            self.experiment.end()
        finally:
            self.experiment = None

    def archive(self) -> Path | None:
        """The offline archive written by :meth:`close` (None when online or not closed yet)."""
        if self.offline_dir is None or not self.offline_dir.is_dir():
            return None
        zips = sorted(self.offline_dir.glob("*.zip"), key=lambda p: p.stat().st_mtime)
        return zips[-1] if zips else None
