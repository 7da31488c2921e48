"""Constructor checks: each bad value names the key, the value and what is allowed."""

from __future__ import annotations

import pytest

from recframe import validation
from recframe.interfaces import ConfigError


@pytest.mark.parametrize(
    ("fn", "value", "message"),
    [
        (lambda v: validation.integer("tester.k", v, 1), 0, "tester.k=0: must be an integer in [1, inf]"),
        (lambda v: validation.integer("tester.k", v, 1), "ten", "must be an integer"),
        (lambda v: validation.integer("tester.k", v, 1), 2.5, "must be an integer"),
        (lambda v: validation.integer("tester.k", v, 1), True, "must be an integer"),
        (lambda v: validation.positive("model.lr", v), 0.0, "model.lr=0.0: must be > 0.0"),
        (lambda v: validation.positive("model.lr", v), float("nan"), "must be finite"),
        (lambda v: validation.choice("model.loss", v, ["ce", "bpr"]), "mse", "must be one of ce, bpr"),
        (lambda v: validation.int_list("tester.ks", v), [], "must not be empty"),
        (lambda v: validation.int_list("tester.ks", v), [5, 0], "tester.ks[1]=0"),
        (lambda v: validation.boolean("deployer.force", v), "yes", "must be true or false"),
    ],
)
def test_bad_values_raise_one_line(fn, value, message):
    with pytest.raises(ConfigError) as e:
        fn(value)
    assert message in str(e.value)
    assert "\n" not in str(e.value)
    assert e.value.exit_code == 2


def test_good_values_pass_through():
    assert validation.integer("k", 3.0, 1) == 3
    assert validation.positive("lr", 1e-3) == pytest.approx(1e-3)
    assert validation.int_list("ks", 20) == [20]
