"""The default tester falls back to metrics only when reclist is not installed (plain `pip install`)."""

from __future__ import annotations

import sys

from recframe.tester.metrics import MetricsTester
from recframe.tester.reclist import reclist_or_metrics
from recframe.tester.reclist_suite import ReclistTester


def test_reclist_suite_when_installed():
    tester = reclist_or_metrics(gates={"hr@20": ">= 1.2 * baseline_pop"}, n_samples=50)
    assert isinstance(tester, ReclistTester)


def test_metrics_tester_with_the_same_gates_when_reclist_is_missing(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "recframe.tester.reclist_suite", None)  # import now raises ImportError
    tester = reclist_or_metrics(k=10, ks=[5, 10], gates={"hr@10": ">= 0.1"}, n_samples=50)
    assert isinstance(tester, MetricsTester)
    assert tester.k == 10 and [g for g in tester.gates]
    assert "pip install --no-deps reclist==2.1.0" in caplog.text
