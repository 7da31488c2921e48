"""MLflow tracking against a local store: a folder (``file:``) or a SQLite file, no server.

The default store is ``file:${paths.home}/mlruns`` so runs of a project accumulate next to its
embedded warehouse, and ``mlflow ui --backend-store-uri file:.recframe/mlruns`` browses them.
MLflow 3 refuses a folder store unless ``MLFLOW_ALLOW_FILE_STORE=true``; choosing a ``file:`` URI in
the config *is* that choice, so the tracker sets it. ``sqlite:///path/mlflow.db`` works too (it
needs SQLAlchemy and Alembic, which ``mlflow-skinny`` does not install).

It talks to MLflow through an ``MlflowClient`` bound to one run id rather than the fluent
``mlflow.start_run`` API: the fluent API keeps a process-global "active run", which breaks when a
sweep runs several jobs in one process.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from recframe.interfaces import ConfigError, RecframeError, Tracker
from recframe.secrets import scrub_params
from recframe.tracker.values import numeric_metrics, safe_name

# MLflow limits a param value to 6000 characters (and keys to 250); longer values are cut.
_MAX_VALUE = 6000
_MAX_KEY = 250
_BATCH = 100  # params per log_batch call (MLflow's limit)


class MLflowTracker(Tracker):
    """Logs params, metrics and report files to an MLflow run in a local store.

    Args:
        tracking_uri: ``file:/abs/or/rel/mlruns`` or ``sqlite:///path/mlflow.db`` (remote
            ``http(s)://`` servers work too, but then it is no longer local).
        experiment_name: MLflow experiment; created on first use.
        artifact_location: where a *new* experiment keeps artifacts (None: next to the store, so
            a SQLite store does not scatter ``mlruns/`` into the current directory).
    """

    def __init__(
        self,
        tracking_uri: str = "file:.recframe/mlruns",
        experiment_name: str = "recframe",
        artifact_location: str | None = None,
    ) -> None:
        if not isinstance(tracking_uri, str) or not tracking_uri:
            raise ConfigError("tracker.tracking_uri", tracking_uri, "must be a URI such as file:.recframe/mlruns")
        scheme = urlparse(tracking_uri).scheme
        if scheme not in ("file", "sqlite", "http", "https", "postgresql", "mysql", ""):
            raise ConfigError("tracker.tracking_uri", tracking_uri, "use file:PATH or sqlite:///PATH (or http(s)://)")
        if not experiment_name:
            raise ConfigError("tracker.experiment_name", experiment_name, "must be a non-empty string")
        self.tracking_uri = _absolute_file_uri(tracking_uri)
        self.experiment_name = experiment_name
        self.artifact_location = artifact_location
        self.client: Any = None
        self.run_id: str | None = None
        self._logger: Any = None

    def start(self, run_dir: Path, run_id: str) -> None:
        """Create (or reuse) the experiment and open a run tagged with the recframe run id."""
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        os.environ.setdefault("DO_NOT_TRACK", "true")
        if self.tracking_uri.startswith("file:"):
            Path(urlparse(self.tracking_uri).path).mkdir(parents=True, exist_ok=True)
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        elif self.tracking_uri.startswith("sqlite:"):
            db = Path(self.tracking_uri.removeprefix("sqlite:///"))
            db.parent.mkdir(parents=True, exist_ok=True)
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise RecframeError("tracker=mlflow needs mlflow: pip install 'recframe[mlflow]'") from None
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        experiment = self.client.get_experiment_by_name(self.experiment_name)
        if experiment is not None:
            experiment_id = experiment.experiment_id
        else:
            experiment_id = self.client.create_experiment(self.experiment_name, self._artifact_location())
        run = self.client.create_run(
            experiment_id,
            run_name=run_id,
            tags={"recframe.run_id": run_id, "recframe.run_dir": str(Path(run_dir).resolve())},
        )
        self.run_id = run.info.run_id

    def _artifact_location(self) -> str | None:
        if self.artifact_location:
            return self.artifact_location
        if self.tracking_uri.startswith("sqlite:"):
            db = Path(self.tracking_uri.removeprefix("sqlite:///"))
            return (db.parent / "mlartifacts").resolve().as_uri()
        return None  # file store: MLflow keeps artifacts inside the store

    def log_params(self, params: dict[str, Any]) -> None:
        if self.client is None:
            return
        from mlflow.entities import Param

        clean = scrub_params(params)
        items = [Param(safe_name(k)[:_MAX_KEY], str(v)[:_MAX_VALUE]) for k, v in clean.items()]
        for i in range(0, len(items), _BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + _BATCH])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self.client is None:
            return
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(safe_name(k), v, now, step or 0) for k, v in numeric_metrics(metrics).items()]
        if items:
            self.client.log_batch(self.run_id, metrics=items)

    def log_artifact(self, path: Path) -> None:
        if self.client is not None and Path(path).is_file():
            parent = Path(path).parent.name
            self.client.log_artifact(self.run_id, str(path), artifact_path=parent if parent == "report" else None)

    def lightning_logger(self) -> Any:
        """Lightning's ``MLFlowLogger`` writing into this same run (training curves next to test metrics)."""
        if self.client is None:
            return None
        if self._logger is None:
            from lightning.pytorch.loggers import MLFlowLogger

            self._logger = MLFlowLogger(
                experiment_name=self.experiment_name, tracking_uri=self.tracking_uri, run_id=self.run_id
            )
        return self._logger

    def close(self) -> None:
        if self.client is not None and self.run_id is not None:
            self.client.set_terminated(self.run_id)
        self.client = None


def _absolute_file_uri(uri: str) -> str:
    """``file:rel/path`` -> ``file:///abs/path``: a relative store would move with the working directory."""
    if not uri.startswith("file:"):
        return uri
    path = Path(urlparse(uri).path if uri.startswith("file://") else uri.removeprefix("file:"))
    return path.expanduser().resolve().as_uri()
