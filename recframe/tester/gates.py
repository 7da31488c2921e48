"""Deployment gates: thresholds on test metrics, written in config as short expressions.

A gate is ``METRIC: "OP NUMBER [* baseline_NAME]"``, for example::

    gates:
      hr@20: ">= 1.2 * baseline_pop"   # beat popularity by 20 %
      coverage@20: ">= 0.05"           # recommend at least 5 % of the catalogue
      popbias@20: "< 0.5"

``OP`` is one of ``>= > <= <``; ``baseline_NAME`` alone means ``1 * baseline_NAME``. The expression
is parsed by a tiny tokenizer, never ``eval``-ed: config is user input, and a gate must not be able
to run code. Gates are parsed in the tester's constructor, so a typo fails the run before any work,
with a :class:`~recframe.interfaces.ConfigError` naming ``tester.gates.METRIC``.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from recframe.interfaces import ConfigError

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}
_NUMBER = r"[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?"
_GATE = re.compile(
    rf"^\s*(?P<op>>=|<=|>|<)\s*"
    rf"(?:(?P<num>{_NUMBER})\s*(?:\*\s*baseline_(?P<base1>[A-Za-z][A-Za-z0-9_]*))?"
    rf"|baseline_(?P<base2>[A-Za-z][A-Za-z0-9_]*))\s*$"
)
_METRIC = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(?:@[0-9]+)?$")
FORM = "a gate must read 'OP NUMBER [* baseline_NAME]' with OP one of >=, >, <=, < (e.g. '>= 1.2 * baseline_pop')"


@dataclass(frozen=True)
class Gate:
    """One parsed threshold: ``metric op factor [* baseline]``."""

    metric: str
    op: str
    factor: float
    baseline: str | None
    expr: str

    def threshold(self, metrics: Mapping[str, Any]) -> float | None:
        """The numeric threshold for these metrics; None when the baseline value is missing."""
        if self.baseline is None:
            return self.factor
        base = metrics.get(f"baseline_{self.baseline}")
        if not isinstance(base, Mapping):
            return None
        value = base.get(self.metric)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return self.factor * float(value)

    def check(self, metrics: Mapping[str, Any]) -> GateVerdict:
        """Compare this run's metric with the threshold; a missing value fails (never passes silently)."""
        value = metrics.get(self.metric)
        thr = self.threshold(metrics)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
            return GateVerdict(self, None, thr, False, f"metric {self.metric} was not computed")
        if thr is None:
            return GateVerdict(self, float(value), None, False, f"baseline {self.baseline} has no {self.metric}")
        ok = _OPS[self.op](float(value), thr)
        return GateVerdict(self, float(value), thr, ok, "")


@dataclass(frozen=True)
class GateVerdict:
    """The outcome of one gate: value, threshold, pass/fail and, if it could not be checked, why."""

    gate: Gate
    value: float | None
    threshold: float | None
    passed: bool
    reason: str = ""

    def line(self) -> str:
        """One line naming the gate, the value and the threshold (what the CLI prints on failure)."""
        g = self.gate
        thr = "n/a" if self.threshold is None else f"{self.threshold:.4g}"
        val = "n/a" if self.value is None else f"{self.value:.4g}"
        status = "passed" if self.passed else "FAILED"
        text = f"gate {g.metric} {g.expr.strip()} {status}: value {val}, threshold {g.op} {thr}"
        return f"{text} ({self.reason})" if self.reason else text

    def to_dict(self) -> dict[str, Any]:
        g = self.gate
        return {
            "metric": g.metric,
            "expr": g.expr.strip(),
            "op": g.op,
            "value": self.value,
            "threshold": self.threshold,
            "passed": self.passed,
            "reason": self.reason,
        }


def parse_gate(metric: str, expr: Any, key: str = "tester.gates") -> Gate:
    """Parse one gate expression; raise ConfigError (naming ``key.metric``) when it is malformed."""
    full_key = f"{key}.{metric}"
    if not isinstance(metric, str) or not _METRIC.match(metric):
        raise ConfigError(full_key, metric, "a gate's key must be a metric name such as hr@20 or coverage@20")
    if not isinstance(expr, str):
        raise ConfigError(full_key, expr, FORM)
    m = _GATE.match(expr)
    if not m:
        raise ConfigError(full_key, expr, FORM)
    factor = float(m.group("num")) if m.group("num") is not None else 1.0
    if not math.isfinite(factor):
        raise ConfigError(full_key, expr, "the number must be finite")
    baseline = m.group("base1") or m.group("base2")
    return Gate(metric=metric, op=m.group("op"), factor=factor, baseline=baseline, expr=expr)


def parse_gates(
    gates: Mapping[str, Any] | None,
    key: str = "tester.gates",
    known_metrics: Collection[str] | None = None,
    known_baselines: Collection[str] = ("pop",),
) -> list[Gate]:
    """Parse the ``gates`` mapping from config.

    ``known_metrics`` (when given) is what the tester computes, so a gate on a metric it never
    produces is a config error now rather than a failed gate after a long run.
    """
    if gates is None:
        return []
    if not isinstance(gates, Mapping):
        try:  # an OmegaConf DictConfig behaves as a mapping but may not register as one
            gates = dict(gates.items())
        except AttributeError:
            raise ConfigError(key, gates, "must be a mapping of metric -> expression") from None
    parsed = []
    for metric, expr in gates.items():
        gate = parse_gate(str(metric), expr, key)
        if known_metrics is not None and gate.metric not in known_metrics:
            allowed = ", ".join(sorted(known_metrics))
            raise ConfigError(f"{key}.{gate.metric}", expr, f"this tester computes no {gate.metric}; known: {allowed}")
        if gate.baseline is not None and gate.baseline not in known_baselines:
            raise ConfigError(
                f"{key}.{gate.metric}", expr, f"unknown baseline_{gate.baseline}; known: {', '.join(known_baselines)}"
            )
        parsed.append(gate)
    return parsed


def check_gates(gates: list[Gate], metrics: Mapping[str, Any]) -> tuple[list[GateVerdict], list[str]]:
    """All verdicts, and one failure line per failed gate (empty when everything passed)."""
    verdicts = [g.check(metrics) for g in gates]
    return verdicts, [v.line() for v in verdicts if not v.passed]
