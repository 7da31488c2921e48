"""What trackers accept: finite numbers and names without odd characters.

Secrets are masked by :func:`recframe.secrets.scrub_params` before anything reaches a tracker; this
module only shapes what is left into the form Comet and MLflow take.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any


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
