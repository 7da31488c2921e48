"""Fixtures for deployer tests: real artifacts (a small GRU probe model and pop) written by the real
artifact code, and a live local endpoint on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recframe.deployer.probe_model import ProbeGRUModel
from recframe.model.pop import PopModel


def make_events(n_sessions: int = 200, n_items: int = 60, seed: int = 0) -> pd.DataFrame:
    """Long-format events with skewed popularity, so the vocabulary's counts differ."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        for t in range(int(rng.integers(2, 8))):
            item = int(rng.zipf(1.4)) % n_items
            rows.append((f"s{s}", f"sku{item}", s * 100 + t))
    return pd.DataFrame(rows, columns=["session_id", "item_id", "ts"])


@pytest.fixture(scope="session")
def events() -> pd.DataFrame:
    return make_events()


@pytest.fixture(scope="session")
def probe_artifact(tmp_path_factory: pytest.TempPathFactory, events: pd.DataFrame) -> Path:
    """A session-dependent model, so exclusion and ranking are really exercised."""
    return ProbeGRUModel(dim=16, seed=1).fit(events).save(tmp_path_factory.mktemp("art") / "probe")


@pytest.fixture(scope="session")
def pop_artifact(tmp_path_factory: pytest.TempPathFactory, events: pd.DataFrame) -> Path:
    return PopModel().fit(events).save(tmp_path_factory.mktemp("art") / "pop")


@pytest.fixture(scope="module")
def endpoint(probe_artifact: Path, tmp_path_factory: pytest.TempPathFactory):
    """A live local deployment of the probe artifact, shared by a module's tests."""
    from recframe.deployer.local import LocalDeployer

    deployer = LocalDeployer(smoke_k=5, max_session_len=500, max_sessions=50)
    deployment = deployer.deploy(probe_artifact, tmp_path_factory.mktemp("run"))
    yield deployment
    deployer.teardown()


@pytest.fixture(scope="session")
def fuzz_corpus_module():
    """``fuzz_corpus.py`` beside this file, loaded by path (test folders are not packages)."""
    spec = importlib.util.spec_from_file_location("recframe_fuzz_corpus", Path(__file__).with_name("fuzz_corpus.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def fuzz_corpus(fuzz_corpus_module) -> list[tuple[str, bytes]]:
    """The corpus as a list, with the same seed as the HTTP fuzz test."""
    return list(fuzz_corpus_module.cases(random.Random(1234)))
