"""Trackers send nothing anywhere without a key: a traced sweep over comet and mlflow connects only to loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.helpers.cli import ROOT, fast_overrides
from tests.test_no_network import outbound_addresses


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_comet_and_mlflow_runs_connect_only_to_loopback(tmp_path):
    trace_file = tmp_path / "trace.txt"
    # No opt-out variables at all: recframe and the trackers must keep themselves offline.
    drop = ("DO_NOT_TRACK", "MLFLOW_", "COMET_", "SNOWFLAKE_", "AWS_EC2")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["RECFRAME_HOME"] = str(tmp_path / "home")
    sweep = tmp_path / "sweep"
    cmd = [
        "strace", "-f", "-qq", "-e", "trace=connect", "-o", str(trace_file),
        sys.executable, "-m", "recframe", "-m", "tracker=comet,mlflow", "model=pop",
        *fast_overrides(tmp_path / "data"), f"hydra.sweep.dir={sweep}",
    ]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert list((sweep / "0" / "comet").glob("*.zip")), "comet wrote no offline archive"
    assert (tmp_path / "home" / "mlruns").is_dir()
    assert outbound_addresses(trace_file.read_text()) == set()
