"""Last-line secret scrubbing shared by the trackers that send data somewhere (Comet, MLflow).

The pipeline already hands trackers :func:`recframe.app.redacted_params`, so secrets in the config
arrive masked. Trackers scrub again anyway, because a tracker can also be driven directly from
Python with a hand-made dict, and because a secret can reach a value under an innocent key (e.g.
``datasource.dsn: ${oc.env:DB_PASSWORD}`` resolved by a caller). Once a secret is in a remote
experiment it cannot be taken back, so a second, cheap check is worth it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Any

from recframe.app import REDACTED, SECRET_PATTERN

# Secret-looking environment variables shorter than this are not matched inside values: a 1-3
# character "secret" would mask half of the config by accident.
_MIN_SECRET_LEN = 4


def env_secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables whose *name* looks secret (``*_PASSWORD``, ``*_API_KEY``...)."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if SECRET_PATTERN.search(k) and len(v) >= _MIN_SECRET_LEN}
    return sorted(values, key=len, reverse=True)  # longest first, so overlapping secrets mask fully


def scrub_value(value: Any, secrets: list[str]) -> Any:
    """``value`` with every known secret string replaced by the redaction marker."""
    if not isinstance(value, str) or not secrets:
        return value
    for s in secrets:
        if s in value:
            value = value.replace(s, REDACTED)
    return value


def scrub_params(params: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Mask values under secret-looking keys, and any secret env value found inside other values."""
    secrets = env_secret_values(environ)
    out: dict[str, Any] = {}
    for key, value in params.items():
        if SECRET_PATTERN.search(str(key)) and value is not None:
            out[key] = REDACTED
        else:
            out[key] = scrub_value(value, secrets)
    return out


def numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Only the finite numbers of a metrics dict (trackers reject strings, NaN and nested dicts)."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if math.isfinite(float(v)):
            out[k] = float(v)
    return out


_INVALID_NAME = re.compile(r"[^A-Za-z0-9_\-. :/]")


def safe_name(name: str) -> str:
    """A metric/param name accepted by MLflow: ``mrr@20`` -> ``mrr_at_20``, other odd characters -> ``_``."""
    return _INVALID_NAME.sub("_", name.replace("@", "_at_"))
