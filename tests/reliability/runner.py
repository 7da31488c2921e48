"""Helpers for the reliability suites: small inputs and the one-line error check (runner: tests.helpers.cli)."""

from __future__ import annotations

import subprocess

from tests.helpers.cli import cli_env, run_cli

__all__ = ["NO_DEPLOY", "SMALL_DATA", "assert_one_line_error", "cli_env", "run_cli"]

# a small synthetic data set: the data step takes ~10 s, an epoch of a small GRU ~2 s on 2 cores
SMALL_DATA = ["datasource.synthetic.n_sessions=4000", "datasource.synthetic.n_items=300"]
NO_DEPLOY = ["tester=metrics", "deployer=none", "run.progress=false"]


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """A user error: non-zero exit, no traceback, one ``recframe: error:`` line naming the problem."""
    err = proc.stderr
    assert proc.returncode not in (0, None), err[-2000:]
    assert "Traceback" not in err, err[-3000:]
    lines = [ln for ln in err.splitlines() if ln.startswith("recframe: error:")]
    assert len(lines) == 1, err[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]
