"""Tiny reference components for testing the pipeline without Hydra, dbt or a network.

A deterministic Markov-chain event generator (each item has one likely successor, so a sequential
model can learn what popularity cannot) and minimal DataSource/Tester/Deployer implementations.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recframe.evaluation import evaluate
from recframe.interfaces import Dataset, DataSource, Deployer, Deployment, Model, Tester, TestResult
from recframe.model.pop import PopModel


def markov_events(n_sessions: int = 300, n_items: int = 40, seed: int = 0, start_session: int = 0) -> pd.DataFrame:
    """Sessions that follow ``item -> item+1`` with probability 0.8 (else a random item)."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(start_session, start_session + n_sessions):
        length = int(rng.integers(2, 8))
        item = int(rng.zipf(1.5) % n_items)
        for t in range(length):
            rows.append((f"s{s:05d}", f"sku{item}", s * 1000 + t))
            item = (item + 1) % n_items if rng.random() < 0.8 else int(rng.integers(n_items))
    return pd.DataFrame(rows, columns=["session_id", "item_id", "ts"])


class ToySource(DataSource):
    """A DataSource over the Markov generator: the embedded data path without DuckDB or dbt."""

    def __init__(self, n_sessions: int = 300, seed: int = 0) -> None:
        self.n_sessions, self.seed = n_sessions, seed

    def load(self, work_dir: Path) -> Dataset:
        n = self.n_sessions
        train = markov_events(n, seed=self.seed)
        valid = markov_events(n // 5, seed=self.seed + 1, start_session=n)
        test = markov_events(n // 5, seed=self.seed + 2, start_session=2 * n)
        return Dataset(train, valid, test, stats={"train": {"sessions": n}})


class ToyTester(Tester):
    """HR@K against pop, with an optional minimum that acts as a gate."""

    def __init__(self, min_hr: float = 0.0, k: int = 5) -> None:
        self.min_hr, self.k = min_hr, k

    def run(self, model: Model, data: Dataset, out_dir: Path) -> TestResult:
        out_dir.mkdir(parents=True, exist_ok=True)
        m = evaluate(model, data.test, ks=(self.k,))
        pop = evaluate(PopModel().fit(data.train), data.test, ks=(self.k,))
        metrics = {"model": model.name, **m, "baseline_pop": pop}
        hr = m[f"hr@{self.k}"]
        failures = [] if hr >= self.min_hr else [f"hr@{self.k}={hr:.3f} < {self.min_hr}"]
        (out_dir / "report.json").write_text("{}")
        return TestResult(metrics=metrics, passed=not failures, failures=failures)


class RecordingDeployer(Deployer):
    """Pretends to deploy: records the artifact it was given (the real ones are tested elsewhere)."""

    def __init__(self, force: bool = False) -> None:
        self.force = force
        self.deployed: list[Path] = []
        self.torn_down = 0

    def deploy(self, artifact_dir: Path, run_dir: Path) -> Deployment:
        self.deployed.append(Path(artifact_dir))
        return Deployment(url="http://127.0.0.1:0", smoke={"passed": True})

    def teardown(self) -> None:
        self.torn_down += 1
