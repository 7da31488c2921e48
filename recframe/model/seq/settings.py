"""Typed training settings of the sequence models, checked once where they are built.

The yaml stays flat (``model.learning_rate``, ``model.batch_size``, ...) so overrides read the same
for every model; each model's constructor gathers its training keys into one of these frozen
dataclasses. The Lightning modules and the shared fit then read typed attributes instead of a dict
of strings, and the checks and their error messages (``model.<key>``) live in one place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from recframe import validation as V
from recframe.interfaces import ConfigError


@dataclass(frozen=True)
class TrainingSettings:
    """What the shared fit of every sequence model reads: step size, batch, early stopping, resume."""

    learning_rate: float = 0.001
    batch_size: int = 128
    patience: int = 3
    resume: bool = True
    eval_batch_size: int = 1024

    def __post_init__(self) -> None:
        self._check("learning_rate", V.positive)
        self._check("batch_size", V.integer, 1)
        self._check("patience", V.integer, 0)
        self._check("resume", V.boolean)
        self._check("eval_batch_size", V.integer, 1)

    @classmethod
    def from_keys(cls, **keys: Any) -> TrainingSettings:
        """Build from flat config keys; an unknown key is a :class:`ConfigError` naming it."""
        known = {f.name for f in dataclasses.fields(cls)}
        for key in keys:
            if key not in known:
                raise ConfigError(f"model.{key}", keys[key], "not a key of this model (see its yaml in conf/model/)")
        return cls(**keys)

    def _check(self, name: str, rule: Callable[..., Any], *bounds: Any) -> None:
        """Validate one field under its config key and keep the normalised value (the object is frozen)."""
        object.__setattr__(self, name, rule(f"model.{name}", getattr(self, name), *bounds))


@dataclass(frozen=True)
class PaddedTrainingSettings(TrainingSettings):
    """SASRec and the LSTM: Adam on padded session windows, full or sampled softmax."""

    LOSSES: ClassVar[tuple[str, ...]] = ("auto", "full", "sampled")

    loss: str = "auto"
    n_sample: int = 1024
    sample_alpha: float = 0.5
    logq: float = 1.0
    full_softmax_max_items: int = 10_000
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check("loss", V.choice, self.LOSSES)
        self._check("n_sample", V.integer, 1)
        self._check("sample_alpha", V.number, 0.0, 1.0)
        self._check("logq", V.number, 0.0)
        self._check("full_softmax_max_items", V.integer, 0)
        self._check("weight_decay", V.number, 0.0)


@dataclass(frozen=True)
class GRU4RecTrainingSettings(TrainingSettings):
    """GRU4Rec: session-parallel steps, sampled negatives, Adagrad with momentum (official names)."""

    LOSSES: ClassVar[tuple[str, ...]] = ("cross-entropy", "bpr-max")

    learning_rate: float = 0.05
    batch_size: int = 64
    loss: str = "cross-entropy"
    momentum: float = 0.0
    n_sample: int = 2048
    sample_alpha: float = 0.5
    sample_cache_size: int = 10_000_000
    bpreg: float = 1.0
    elu_param: float = 0.5
    logq: float = 0.0
    steps_per_batch: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check("loss", V.choice, self.LOSSES)
        self._check("momentum", V.number, 0.0, 0.999)
        self._check("n_sample", V.integer, 0)
        self._check("sample_alpha", V.number, 0.0, 1.0)
        self._check("sample_cache_size", V.integer, 1)
        self._check("bpreg", V.number, 0.0)
        self._check("elu_param", V.number, 0.0)
        self._check("logq", V.number, 0.0)
        self._check("steps_per_batch", V.integer, 1)
