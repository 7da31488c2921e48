"""The ``none`` tester: skip testing (for quick iterations on data or deployment).

It passes every run and reports no metrics beyond the model's name, so the deploy step is never
blocked; the report says testing was skipped rather than showing empty numbers.
"""

from __future__ import annotations

from pathlib import Path

from recframe.atomic import write_json
from recframe.interfaces import Dataset, Model, Tester, TestResult


class NoneTester(Tester):
    """Runs no test; writes a ``report.json`` that says so."""

    name = "none"

    def __init__(self, html: bool = True) -> None:
        from recframe import validation

        self.html = validation.boolean("tester.html", html)

    def run(self, model: Model, data: Dataset, out_dir: Path) -> TestResult:
        name = str(getattr(model, "name", type(model).__name__))
        report = {"metadata": {"tester": self.name, "model_name": name}, "skipped": True, "gates": []}
        write_json(Path(out_dir) / "report.json", report)
        result = TestResult(metrics={"model": name}, report=report, passed=True, failures=[])
        if self.html:  # the run summary (data, lineage, training curves) is worth having without tests
            from recframe.report import write_report

            write_report(Path(out_dir).parent, result)
        return result
