"""The tracker that records nothing (the default): runs stay fully local and offline."""

from __future__ import annotations

from typing import Any

from recframe.interfaces import Tracker


class NoneTracker(Tracker):
    """Discards everything; the run directory itself is the record."""

    def log_params(self, params: dict[str, Any]) -> None:
        return None

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        return None
