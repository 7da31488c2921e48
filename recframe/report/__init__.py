"""Everything a run or a set of runs is reported as, in one place.

* :mod:`recframe.report.run_report`: ``report/index.html``, the page for one run (the pipeline
  writes it after the test step and refreshes it after the deploy step).
* :mod:`recframe.report.compare`: ``recframe compare RUN_DIR...``, runs side by side.
* :mod:`recframe.report.leaderboard`: the one writer of ``leaderboard.csv`` / ``leaderboard.html``,
  used by the comparison and by the sweep summary (:mod:`recframe.sweep`).
* :mod:`recframe.report.svg`: the inline SVG charts; :mod:`recframe.report.rendering`: the
  autoescaping Jinja2 environment whose templates live in ``recframe/report/templates/``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["render_report", "write_report"]


def __getattr__(name: str) -> Any:
    # lazy: the sweep callback imports recframe.report.leaderboard on every run, and must not pull
    # in the run report (and with it numpy and pandas) to do so
    if name in __all__:
        from recframe.report import run_report

        return getattr(run_report, name)
    raise AttributeError(f"module 'recframe.report' has no attribute {name!r}")
