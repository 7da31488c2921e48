"""Shared fixtures. Sets the environment so no test reaches beyond 127.0.0.1 (see docs/architecture.md)."""

from __future__ import annotations

import os

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
