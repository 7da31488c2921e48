"""The four swappable interfaces of recframe (plus the tracker), and the objects they pass around.

Everything the pipeline knows about a component is in this module: a Hydra config group picks an
implementation by ``_target_``, and the pipeline talks to it only through these methods. Keeping the
contracts small (as scikit-learn does with ``fit``/``predict``) is what lets a user's own class drop in.

Data travels between steps as *long-format event frames*: one row per event, columns
``session_id`` (str), ``item_id`` (str, the SKU) and ``ts`` (int64 epoch milliseconds, or an ordinal),
sorted by ``session_id`` then ``ts``. It is the GRU4Rec / session-rec layout, so public data sets load
without reshaping.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recframe import atomic

EVENT_COLUMNS = ("session_id", "item_id", "ts")


class RecframeError(Exception):
    """A user-facing error: the CLI prints its message as one line, with no traceback."""

    exit_code = 1


class ConfigError(RecframeError):
    """A configuration value is invalid; raised before any work starts (exit code 2)."""

    exit_code = 2

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"invalid config {key}={value!r}: {allowed}")

    @classmethod
    def plain(cls, message: str) -> ConfigError:
        """A config error whose message is already a complete sentence (e.g. from Hydra)."""
        err = cls.__new__(cls)
        err.key, err.value, err.allowed = "", None, message
        Exception.__init__(err, message)
        return err


class DataError(RecframeError):
    """The data cannot be used (empty split, failing dbt test, malformed input)."""


class GateError(RecframeError):
    """A tester gate failed, so the model must not be deployed."""


class DeployError(RecframeError):
    """A deployment failed (the server did not start, failed its smoke test, or the cloud refused it);
    the message says what was left serving."""


class ArtifactError(RecframeError):
    """The artifact is missing, tampered with, or names a class that is not a recframe Model."""


class OutputError(RecframeError):
    """The run directory could not be written: the disk is full, a file grew past a limit, or it is read-only."""


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


@dataclass
class Dataset:
    """The output of the data step: three long-format event frames and their statistics.

    ``items`` is an optional catalogue (``item_id`` plus columns such as ``category``) that testers
    use for slices; ``stats`` is a JSON-serialisable dict (counts, date range, quarantine counts).
    """

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    stats: dict[str, Any] = field(default_factory=dict)
    items: pd.DataFrame | None = None

    def save(self, directory: str | Path) -> None:
        """Write the dataset as parquet plus ``manifest.json`` (the run directory's ``data/``)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for name in ("train", "valid", "test"):
            _atomic_parquet(getattr(self, name), d / f"{name}.parquet")
        files = ["train.parquet", "valid.parquet", "test.parquet"]
        if self.items is not None:
            _atomic_parquet(self.items, d / "items.parquet")
            files.append("items.parquet")
        manifest = {"files": files, "columns": list(EVENT_COLUMNS), "stats": self.stats}
        atomic.write_json(d / "manifest.json", manifest)

    @classmethod
    def load(cls, directory: str | Path) -> Dataset:
        """Read a dataset written by :meth:`save`."""
        d = Path(directory)
        manifest_path = d / "manifest.json"
        if not manifest_path.exists():
            raise DataError(f"no dataset manifest at {manifest_path}: run the 'data' step first")
        manifest = json.loads(manifest_path.read_text())
        items = pd.read_parquet(d / "items.parquet") if (d / "items.parquet").exists() else None
        return cls(
            train=pd.read_parquet(d / "train.parquet"),
            valid=pd.read_parquet(d / "valid.parquet"),
            test=pd.read_parquet(d / "test.parquet"),
            stats=manifest.get("stats", {}),
            items=items,
        )


def _atomic_parquet(df: pd.DataFrame, path: Path) -> None:
    with atomic.atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


class DataSource(ABC):
    """Ingests raw events, builds session sequences (dbt or files) and splits them."""

    @abstractmethod
    def load(self, work_dir: Path) -> Dataset:
        """Produce the train/valid/test split. ``work_dir`` is the run's ``data/`` folder, for
        artifacts such as the dbt manifest; the pipeline saves the returned Dataset there."""

    def check(self) -> None:  # noqa: B027 - optional hook
        """Fail fast (before any work) when credentials or connectivity are missing."""


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


@dataclass
class FitContext:
    """What the pipeline hands a model's ``fit`` besides data: trainer settings, logger, folders."""

    trainer: dict[str, Any] = field(default_factory=dict)
    work_dir: Path | None = None
    logger: Any = None
    seed: int = 42
    progress: bool = True


class Model(ABC):
    """A next-item recommender over string SKUs.

    Implementations build an :class:`~recframe.vocab.ItemVocab` in ``fit`` and score all of its items.
    Scores are dense over the vocabulary (index ``i`` is ``vocab.items[i]``), which is what full-ranking
    evaluation and serving both need. ``save``/``load`` go through :mod:`recframe.artifact`, so an
    artifact alone maps SKUs in to SKUs out.
    """

    name: str = "model"
    vocab: Any = None  # recframe.vocab.ItemVocab once fitted

    @abstractmethod
    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None, ctx: FitContext | None = None) -> Model:
        """Learn from long-format events; return self."""

    @abstractmethod
    def score_next(self, sessions: Sequence[np.ndarray]) -> np.ndarray:
        """Scores ``[len(sessions), n_items]`` for the item following each session.

        Each session is an int array of vocabulary indices (unknown items already removed); a
        session may be empty. Higher is better.
        """

    def score_prefixes(self, sessions: Sequence[np.ndarray], batch_size: int = 512):
        """Yield ``(scores, targets)`` for the next item at every position of every session.

        The default expands each session of length n into its n-1 prefixes and calls
        :meth:`score_next`; sequence models override it to score all prefixes in one pass.
        """
        prefixes: list[np.ndarray] = []
        targets: list[int] = []
        for s in sessions:
            for t in range(1, len(s)):
                prefixes.append(s[:t])
                targets.append(int(s[t]))
                if len(prefixes) == batch_size:
                    yield self.score_next(prefixes), np.asarray(targets, dtype=np.int64)
                    prefixes, targets = [], []
        if prefixes:
            yield self.score_next(prefixes), np.asarray(targets, dtype=np.int64)

    def item_embeddings(self) -> np.ndarray | None:
        """Optional ``[n_items, d]`` item vectors (for "less wrong" tests); None if the model has none."""
        return None

    @abstractmethod
    def get_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Return ``(config, tensors)``: a JSON-able config and a dict of arrays/tensors to persist."""

    @classmethod
    @abstractmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, Any], vocab: Any) -> Model:
        """Rebuild a fitted model from what :meth:`get_state` returned."""

    def save(self, directory: str | Path) -> Path:
        from recframe.artifact import save_model

        return save_model(self, directory)

    @staticmethod
    def load(directory: str | Path) -> Model:
        from recframe.artifact import load_model

        return load_model(directory)


# --------------------------------------------------------------------------------------------
# Testers, deployers, trackers
# --------------------------------------------------------------------------------------------


@dataclass
class TestResult:
    """What a tester returns: headline metrics, the full report and the gate verdict."""

    __test__ = False  # not a pytest class

    metrics: dict[str, Any]
    report: dict[str, Any] = field(default_factory=dict)
    passed: bool = True
    failures: list[str] = field(default_factory=list)


class Tester(ABC):
    """Scores a fitted model on the test split and decides whether it may be deployed."""

    @abstractmethod
    def run(self, model: Model, data: Dataset, out_dir: Path) -> TestResult:
        """Evaluate ``model``; write reports under ``out_dir`` (the run's ``report/``)."""


@dataclass
class Deployment:
    """A live endpoint: its URL, the smoke-test result and a handle to stop it."""

    url: str
    smoke: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)


class Deployer(ABC):
    """Ships a model artifact behind an HTTP endpoint that answers the serving contract."""

    force: bool = False
    keep_alive: bool = False
    # False for deployers that serve nothing (``deployer=none``): the tester's gates then have
    # nothing to guard, so a failing gate does not fail the run.
    serves: bool = True

    def check(self) -> None:  # noqa: B027 - optional hook
        """Fail fast (before any work) when credentials or settings are missing."""

    @abstractmethod
    def deploy(self, artifact_dir: Path, run_dir: Path) -> Deployment:
        """Start serving the artifact and smoke-test it."""

    def wait(self) -> None:  # noqa: B027 - optional hook
        """Block until the endpoint is stopped (used with ``keep_alive``)."""

    @abstractmethod
    def teardown(self) -> None:
        """Stop what ``deploy`` started. Must be safe to call twice."""


class Tracker(ABC):
    """Experiment tracking: parameters, metrics, artifacts, and an optional Lightning logger."""

    def start(self, run_dir: Path, run_id: str) -> None:  # noqa: B027 - optional hook
        """Open the run."""

    @abstractmethod
    def log_params(self, params: dict[str, Any]) -> None: ...

    @abstractmethod
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...

    def log_artifact(self, path: Path) -> None:  # noqa: B027 - optional hook
        """Attach a file to the run."""

    def lightning_logger(self) -> Any:
        """A Lightning logger writing to the same run, or None."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and close."""
