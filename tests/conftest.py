"""Shared fixtures. Sets the environment so no test reaches beyond 127.0.0.1 (see docs/architecture.md)."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from omegaconf import DictConfig

# Zero outbound traffic: telemetry and cloud-metadata probes off before any library is imported.
_OFFLINE_ENV = {
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "SNOWFLAKE_DISABLE_PLATFORM_DETECTION": "true",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_DEFAULT_REGION": "us-east-1",
    "COMET_START_ONLINE": "0",
    "HYDRA_FULL_ERROR": "0",
    "NO_PROXY": "127.0.0.1,localhost",
}
for _k, _v in _OFFLINE_ENV.items():
    os.environ.setdefault(_k, _v)
os.environ["COMET_START_ONLINE"] = "0"


@pytest.fixture(scope="session")
def compose_config() -> Callable[..., DictConfig]:
    """``compose_config(*overrides)``: the config ``python -m recframe OVERRIDES`` runs, hydra section included.

    Each distinct set of overrides is composed once per test session; every call returns its own
    copy, so a test may change it freely.
    """
    from recframe.app import compose

    composed: dict[tuple[str, ...], DictConfig] = {}

    def get(*overrides: str) -> DictConfig:
        if overrides not in composed:
            composed[overrides] = compose(list(overrides))
        return copy.deepcopy(composed[overrides])

    return get
