"""Position weights and score decays of V-SKNN (Ludewig & Jannach 2018), as vectorised functions.

Names follow session-rec's ``weighting`` / ``weighting_score`` options so its tuned parameters carry
over unchanged. ``linear`` is clamped at zero in both: session-rec's code turns negative for sessions
longer than ten clicks (and for steps past ten), which is a bug, not a definition.
"""

from __future__ import annotations

import numpy as np


def position_weight(name: str, pos: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Weight of the item at 1-based ``pos`` of a prefix of ``length`` events (V-SKNN ``weighting``).

    Recent items count more. ``linear`` is clamped at zero (session-rec's variant turns negative for
    sessions longer than ten events, which is a bug, not a definition).
    """
    pos = pos.astype(np.float64)
    length = length.astype(np.float64)
    if name == "same":
        return np.ones_like(pos)
    if name == "div":
        return pos / length
    if name == "quadratic":
        return (pos / length) ** 2
    if name == "log":
        return 1.0 / np.log10(length - pos + 1.7)
    if name == "linear":
        return np.maximum(0.0, 1.0 - 0.1 * (length - pos))
    raise ValueError(f"unknown position weighting {name!r}")


def step_decay(name: str, step: np.ndarray) -> np.ndarray:
    """Decay of a neighbour's vote by ``step`` (1 = it contains the last item of the prefix).

    V-SKNN's ``weighting_score``: a neighbour found through an older item of the session votes less.
    ``linear`` is clamped at zero like :func:`position_weight`.
    """
    step = step.astype(np.float64)
    if name == "same":
        return np.ones_like(step)
    if name == "div":
        return 1.0 / step
    if name == "quadratic":
        return 1.0 / (step * step)
    if name == "log":
        return 1.0 / np.log10(step + 1.7)
    if name == "linear":
        return np.maximum(0.0, 1.0 - 0.1 * step)
    raise ValueError(f"unknown score decay {name!r}")


WEIGHTINGS = ("same", "div", "linear", "log", "quadratic")
