"""Small checks that components call in ``__init__`` so a bad config fails before any work.

Each raises :class:`~recframe.interfaces.ConfigError` naming the key, the value and what is allowed;
the CLI prints that as one line and exits with code 2. Keys are the dotted config paths a user types
(``model.lr``), so the message tells them exactly what to change.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from recframe.interfaces import ConfigError


def _number(key: str, value: Any, kind: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(key, value, f"must be a{'n integer' if kind is int else ' number'}")
    if kind is int and not float(value).is_integer():
        raise ConfigError(key, value, "must be an integer")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(key, value, "must be finite")
    return kind(value)


def integer(key: str, value: Any, min_value: int | None = None, max_value: int | None = None) -> int:
    """An int within ``[min_value, max_value]`` (either bound optional)."""
    v = _number(key, value, int)
    if (min_value is not None and v < min_value) or (max_value is not None and v > max_value):
        lo = "-inf" if min_value is None else min_value
        hi = "inf" if max_value is None else max_value
        raise ConfigError(key, value, f"must be an integer in [{lo}, {hi}]")
    return v


def number(
    key: str, value: Any, min_value: float | None = None, max_value: float | None = None, strict_min: bool = False
) -> float:
    """A float within bounds; ``strict_min`` makes the lower bound exclusive (e.g. learning rates > 0)."""
    v = _number(key, value, float)
    if min_value is not None and (v <= min_value if strict_min else v < min_value):
        raise ConfigError(key, value, f"must be {'>' if strict_min else '>='} {min_value}")
    if max_value is not None and v > max_value:
        raise ConfigError(key, value, f"must be <= {max_value}")
    return v


def positive(key: str, value: Any) -> float:
    """A number strictly greater than zero."""
    return number(key, value, 0.0, strict_min=True)


def choice(key: str, value: Any, allowed: Iterable[Any]) -> Any:
    """One of ``allowed``."""
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(key, value, f"must be one of {', '.join(map(str, allowed))}")
    return value


def boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, value, "must be true or false")
    return value


def int_list(key: str, value: Any, min_value: int = 1) -> list[int]:
    """A non-empty list of ints, each >= ``min_value`` (e.g. cut-offs K)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    try:
        items = list(value)
    except TypeError:
        raise ConfigError(key, value, "must be a list of integers") from None
    if not items:
        raise ConfigError(key, value, "must not be empty")
    return [integer(f"{key}[{i}]", v, min_value) for i, v in enumerate(items)]


AUTO = "auto"


def or_auto(key: str, value: Any, rule: Any, *bounds: Any) -> Any:
    """``auto`` (the model scales the value to the data in ``fit``) or a value that passes ``rule``.

    A value that fails says both what ``rule`` allows and that ``auto`` is allowed too.
    """
    if value == AUTO:
        return AUTO
    try:
        return rule(key, value, *bounds)
    except ConfigError as e:
        raise ConfigError(key, value, f"{e.allowed}, or auto (scaled to the data)") from None
