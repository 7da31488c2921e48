"""Gate expressions: parsed without eval, malformed ones refused at construction."""

from __future__ import annotations

import pytest

from recframe.interfaces import ConfigError
from recframe.tester.gates import check_gates, parse_gate, parse_gates

METRICS = {"model": "m", "hr@20": 0.30, "coverage@20": 0.04, "baseline_pop": {"hr@20": 0.2}}


@pytest.mark.parametrize(
    ("expr", "op", "factor", "baseline"),
    [
        (">= 1.2 * baseline_pop", ">=", 1.2, "pop"),
        (">=1.2*baseline_pop", ">=", 1.2, "pop"),
        ("> baseline_pop", ">", 1.0, "pop"),
        (">= 0.05", ">=", 0.05, None),
        ("< .5", "<", 0.5, None),
        ("<= 1e-2", "<=", 0.01, None),
    ],
)
def test_parse_valid(expr: str, op: str, factor: float, baseline: str | None) -> None:
    g = parse_gate("hr@20", expr)
    assert (g.op, g.factor, g.baseline) == (op, pytest.approx(factor), baseline)


@pytest.mark.parametrize(
    "expr",
    [
        "1.2 * baseline_pop",  # no operator
        "=> 0.1",
        "== 0.1",
        ">= __import__('os').system('true')",
        ">= 0.1 + 0.2",
        ">= 1.2 * pop",
        ">= baseline_pop * 1.2",
        ">= -0.1",
        ">= nan",
        "",
        0.5,
        None,
    ],
)
def test_parse_invalid_raises_config_error(expr: object) -> None:
    with pytest.raises(ConfigError) as e:
        parse_gates({"hr@20": expr})
    assert "tester.gates.hr@20" in str(e.value)


def test_unknown_metric_and_baseline_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="computes no"):
        parse_gates({"hr@50": ">= 0.1"}, known_metrics={"hr@20"})
    with pytest.raises(ConfigError, match="unknown baseline_sknn"):
        parse_gates({"hr@20": ">= baseline_sknn"})
    with pytest.raises(ConfigError, match="mapping"):
        parse_gates(["hr@20"])  # type: ignore[arg-type]


def test_check_gates_lines_name_gate_value_threshold() -> None:
    gates = parse_gates({"hr@20": ">= 1.2 * baseline_pop", "coverage@20": ">= 0.05", "mrr@20": "> 0"})
    verdicts, failures = check_gates(gates, METRICS)
    assert [v.passed for v in verdicts] == [True, False, False]
    assert verdicts[0].threshold == pytest.approx(0.24)
    assert failures[0].startswith("gate coverage@20 >= 0.05 FAILED: value 0.04, threshold >= 0.05")
    assert "not computed" in failures[1]


def test_omegaconf_mapping_is_accepted() -> None:
    omegaconf = pytest.importorskip("omegaconf")
    cfg = omegaconf.OmegaConf.create({"hr@20": ">= 1.5 * baseline_pop"})
    assert parse_gates(cfg)[0].factor == 1.5
