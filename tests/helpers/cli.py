"""Run ``python -m recframe`` as a real subprocess, and the small inputs the CLI tests share."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.toy import markov_events

ROOT = Path(__file__).resolve().parents[2]


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The test process's environment (offline settings from conftest) with its own RECFRAME_HOME."""
    return {**os.environ, "RECFRAME_HOME": str(home), "PYTHONUNBUFFERED": "1", **extra}


def run_cli(
    args: list[str],
    home: Path,
    timeout: float = 300,
    extra_env: dict[str, str] | None = None,
    **popen: object,
) -> subprocess.CompletedProcess:
    """``python -m recframe ARGS`` with its own RECFRAME_HOME; ``popen`` goes to :func:`subprocess.run`."""
    return subprocess.run(
        [sys.executable, "-m", "recframe", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(home, **(extra_env or {})),
        **popen,
    )


def write_session_files(folder: Path) -> tuple[Path, Path]:
    """Train/test session files in the layout ``datasource=files`` reads (SessionId, ItemId, Time)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    splits = (("train", markov_events(400, seed=0)), ("test", markov_events(80, seed=2, start_session=1000)))
    for name, events in splits:
        path = folder / f"{name}.tsv"
        events.rename(columns={"session_id": "SessionId", "item_id": "ItemId", "ts": "Time"}).to_csv(
            path, sep="\t", index=False
        )
        paths.append(path)
    return paths[0], paths[1]


def fast_overrides(data_dir: Path) -> list[str]:
    """Overrides for a quick run: small session files, no deploy step (a tester gate cannot fail the job)."""
    train, test = write_session_files(data_dir)
    return [
        "datasource=files",
        f"datasource.train={train}",
        f"datasource.test={test}",
        "deployer=none",
        "steps=[data,train,test]",
    ]
