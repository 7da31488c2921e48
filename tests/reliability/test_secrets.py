"""Secrets through a whole CLI run: canary values for the Snowflake password, the Comet API key and
the AWS secret key sit in the environment (where recframe reads them from) and must not appear in
any file the run writes (run directory, logs, reports, metrics, the Comet archive with its zipped
members, the MLflow store), in the warehouse folder with dbt's artifacts, or on stdout/stderr."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.reliability.runner import NO_DEPLOY, SMALL_DATA, cli_env

CANARIES = {
    "SNOWFLAKE_PASSWORD": "canary-snowflake-9c1e",
    "COMET_API_KEY": "canary-comet-4b7d",
    "AWS_SECRET_ACCESS_KEY": "canary-aws-secret-52af",
}


def _leaks(root: Path) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        blobs = {str(path): path.read_bytes()}
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                blobs.update({f"{path}:{n}": z.read(n) for n in z.namelist()})
        for where, data in blobs.items():
            found += [f"{name} in {where}" for name, v in CANARIES.items() if v.encode() in data]
    return found


def test_canary_secrets_never_reach_files_logs_or_trackers(tmp_path: Path) -> None:
    home, run_dir = tmp_path / "home", tmp_path / "run"
    env = cli_env(home, **CANARIES, AWS_ACCESS_KEY_ID="canary-id", COMET_WORKSPACE="ws")
    args = [
        *SMALL_DATA,
        *NO_DEPLOY,
        "model=pop",
        "tracker=comet",
        "tracker.online=false",  # the key is set, but the test must stay offline: an archive instead
        f"hydra.run.dir={run_dir}",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "recframe", *args], capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list((run_dir / "comet").glob("*.zip")), "the Comet tracker wrote no offline archive"
    assert (run_dir / "metrics.json").exists()
    leaks = _leaks(run_dir) + _leaks(home)
    leaks += [f"{name} on stdout/stderr" for name, v in CANARIES.items() if v in proc.stdout + proc.stderr]
    assert not leaks, leaks
