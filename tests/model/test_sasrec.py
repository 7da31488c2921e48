"""SASRec: shapes, bounded-context scoring, training beats pop, artifacts, sampled softmax."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recframe.artifact import load_model, save_model
from recframe.evaluation import evaluate
from recframe.interfaces import ConfigError, FitContext
from recframe.model.pop import PopModel
from recframe.model.seq.padded import session_windows
from recframe.model.seq.sasrec import SASRecModel
from tests.model.test_gru import markov_events, split

SMALL = dict(hidden_size=32, n_layers=1, n_heads=2, dropout=0.1, max_len=8, batch_size=64, learning_rate=0.005)


def ctx(tmp_path, epochs: int = 2) -> FitContext:
    return FitContext(
        trainer=dict(accelerator="cpu", devices=1, max_epochs=epochs), work_dir=tmp_path, seed=3, progress=False
    )


@pytest.fixture(scope="module")
def toy() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return split(markov_events(1200, 100, seed=2))


@pytest.fixture(scope="module")
def fitted(toy, tmp_path_factory) -> SASRecModel:
    return SASRecModel(**SMALL).fit(toy[0], toy[1], ctx(tmp_path_factory.mktemp("sasrec"), epochs=4))


def test_windows_cover_every_transition_once():
    s = [np.arange(20), np.array([1]), np.array([3, 4])]
    windows = session_windows(s, max_len=8)
    pairs = [(int(w[i]), int(w[i + 1])) for w in windows for i in range(len(w) - 1)]
    assert sorted(pairs) == sorted([(i, i + 1) for i in range(19)] + [(3, 4)])
    assert max(len(w) for w in windows) == 9


def test_constructor_validates():
    with pytest.raises(ConfigError, match="model.n_heads"):
        SASRecModel(hidden_size=30, n_heads=4)
    with pytest.raises(ConfigError, match="model.learning_rate"):
        SASRecModel(learning_rate=-1.0)
    with pytest.raises(ConfigError, match="model.loss"):
        SASRecModel(loss="bpr")


def test_prefix_scores_match_serving_including_beyond_max_len(fitted):
    """One pass over long sessions scores each position with exactly the last max_len items."""
    long = np.arange(20) % len(fitted.vocab)
    chunks = list(fitted.score_prefixes([long, np.array([4, 5, 6])], batch_size=4096))
    scores = torch.cat([torch.as_tensor(s) for s, _ in chunks]).numpy()
    targets = np.concatenate([t for _, t in chunks])
    assert targets.tolist() == long[1:].tolist() + [5, 6]
    prefixes = [long[: t + 1] for t in range(19)] + [np.array([4]), np.array([4, 5])]
    np.testing.assert_allclose(scores, fitted.score_next(prefixes), rtol=1e-4, atol=1e-4)


def test_training_beats_pop_and_round_trips(toy, fitted, tmp_path):
    test = toy[2]
    assert evaluate(fitted, test)["hr@20"] > 2.0 * evaluate(PopModel().fit(toy[0]), test)["hr@20"]
    assert fitted.fit_summary["softmax"] == "full"
    save_model(fitted, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    sessions = [np.array([1, 2]), np.array([], dtype=np.int64)]
    np.testing.assert_array_equal(loaded.score_next(sessions), fitted.score_next(sessions))
    assert fitted.item_embeddings().shape == (len(fitted.vocab), 32)


def test_sampled_softmax_trains(toy, tmp_path):
    m = SASRecModel(**{**SMALL, "loss": "sampled", "n_sample": 32}).fit(toy[0].iloc[:4000], None, ctx(tmp_path, 2))
    rows = pd.read_csv(tmp_path / "metrics.csv")
    assert m.fit_summary["softmax"] == "sampled"
    assert rows["train_loss"].iloc[1] < rows["train_loss"].iloc[0]
