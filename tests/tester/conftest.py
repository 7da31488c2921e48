"""Fixtures for tester tests: a small synthetic split and three tiny models with known behaviour.

The data has a learnable structure (item ``i`` is usually followed by ``i + 1`` within its category)
and power-law popularity, so a transition model must beat popularity clearly and a random model must
lose to it: the gates and behavioural tests have something real to detect.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from recframe.interfaces import Dataset, FitContext, Model
from recframe.vocab import ItemVocab

N_ITEMS = 60
N_CATS = 6


def make_events(n_sessions: int, seed: int, prefix: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    pop = 1.0 / np.arange(1, N_ITEMS + 1) ** 0.8
    pop /= pop.sum()
    actions = np.array(["detail", "add", "purchase"])
    for s in range(n_sessions):
        length = int(rng.integers(2, 9))
        item = int(rng.choice(N_ITEMS, p=pop))
        for t in range(length):
            rows.append((f"{prefix}{s:05d}", f"sku{item:03d}", s * 100 + t, actions[rng.choice(3, p=[0.7, 0.2, 0.1])]))
            cat = item // (N_ITEMS // N_CATS)
            if rng.random() < 0.8:  # sequential: the next item in the same category
                item = cat * (N_ITEMS // N_CATS) + (item + 1) % (N_ITEMS // N_CATS)
            else:
                item = int(rng.choice(N_ITEMS, p=pop))
    return pd.DataFrame(rows, columns=["session_id", "item_id", "ts", "action"])


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    train = make_events(600, 1, "tr")
    valid = make_events(50, 2, "va")
    test = make_events(150, 3, "te")
    items = pd.DataFrame(
        {"item_id": [f"sku{i:03d}" for i in range(N_ITEMS)], "category": [f"c{i // 10}" for i in range(N_ITEMS)]}
    )
    stats = {"train_events": len(train), "test_events": len(test), "quarantine": {"bad_ts": 3, "null_sku": 1}}
    return Dataset(train=train, valid=valid, test=test, stats=stats, items=items)


class MarkovModel(Model):
    """First-order transitions with a popularity tie-breaker: learns the fixture's structure."""

    name = "markov"

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None, ctx: FitContext | None = None):
        self.vocab = ItemVocab.from_events(train)
        n = len(self.vocab)
        codes = self.vocab.encode_column(train["item_id"])
        sid = train["session_id"].to_numpy()
        same = sid[1:] == sid[:-1]
        self.trans = np.zeros((n, n), dtype=np.float32)
        np.add.at(self.trans, (codes[:-1][same], codes[1:][same]), 1.0)
        self.pop = self.vocab.popularity().astype(np.float32) / max(1, self.vocab.counts.max())
        self.emb = self.trans + self.trans.T + np.eye(n, dtype=np.float32)
        return self

    def score_next(self, sessions: Sequence[np.ndarray]) -> np.ndarray:
        out = np.repeat(self.pop[None, :] * 1e-3, len(sessions), axis=0)
        for i, s in enumerate(sessions):
            if len(s):
                out[i] += self.trans[s[-1]]
        return out

    def item_embeddings(self) -> np.ndarray:
        return self.emb

    def get_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {}, {"trans": self.trans}

    @classmethod
    def from_state(cls, config, tensors, vocab):
        m = cls()
        m.vocab = vocab
        m.trans = np.asarray(tensors["trans"])
        m.pop = vocab.popularity().astype(np.float32) / max(1, vocab.counts.max())
        m.emb = m.trans + m.trans.T + np.eye(len(vocab), dtype=np.float32)
        return m


class RandomModel(Model):
    """Fixed random scores per item: a deliberately bad model the gates must stop."""

    name = "random"

    def fit(self, train, valid=None, ctx=None):
        self.vocab = ItemVocab.from_events(train)
        self.w = np.random.default_rng(0).random(len(self.vocab)).astype(np.float32)
        return self

    def score_next(self, sessions):
        return np.repeat(self.w[None, :], len(sessions), axis=0)

    def get_state(self):
        return {}, {}

    @classmethod
    def from_state(cls, config, tensors, vocab):
        raise NotImplementedError


class FlakyModel(MarkovModel):
    """Breaks the invariants: a padding column, noise on every call, and batch-dependent rows."""

    name = "flaky"

    def score_next(self, sessions):
        base = super().score_next(sessions)
        noise = np.random.default_rng().random(base.shape).astype(np.float32)
        pad = np.full((len(sessions), 1), 1e6, dtype=np.float32)  # a "padding item" scored highest
        return np.concatenate([base + noise * len(sessions), pad], axis=1)


@pytest.fixture(scope="session")
def markov(dataset: Dataset) -> MarkovModel:
    return MarkovModel().fit(dataset.train)


@pytest.fixture(scope="session")
def random_model(dataset: Dataset) -> RandomModel:
    return RandomModel().fit(dataset.train)


@pytest.fixture(scope="session")
def flaky_model(dataset: Dataset) -> FlakyModel:
    return FlakyModel().fit(dataset.train)


@pytest.fixture(scope="session")
def model_classes() -> dict[str, type[Model]]:
    """The fixture model classes, for tests that need fresh (unfitted) instances."""
    return {"markov": MarkovModel, "random": RandomModel, "flaky": FlakyModel}
