"""The case study's LSTM: learns the toy chain, bounded context of max_len items, artifacts."""

from __future__ import annotations

import numpy as np
import pytest

from recframe.artifact import load_model, save_model
from recframe.evaluation import evaluate
from recframe.interfaces import ConfigError, FitContext
from recframe.model.pop import PopModel
from recframe.model.seq.lstm import LSTMModel
from tests.model.test_gru import markov_events, split


def test_constructor_validates():
    with pytest.raises(ConfigError, match="model.max_len"):
        LSTMModel(max_len=0)
    with pytest.raises(ConfigError, match="model.dropout"):
        LSTMModel(dropout=1.5)


def test_lstm_learns_chain_and_round_trips(tmp_path):
    train, valid, test = split(markov_events(1200, 100, seed=4))
    ctx = FitContext(
        trainer=dict(accelerator="cpu", devices=1, max_epochs=4), work_dir=tmp_path, seed=1, progress=False
    )
    m = LSTMModel(embedding_size=16, hidden_size=32, max_len=5, learning_rate=0.01, batch_size=64).fit(
        train, valid, ctx
    )
    assert evaluate(m, test)["hr@20"] > 2.0 * evaluate(PopModel().fit(train), test)["hr@20"]
    # context is the last max_len items: older items do not change the scores
    a, b = m.score_next([np.array([9, 1, 2, 3, 4, 5]), np.array([7, 1, 2, 3, 4, 5])])
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    save_model(m, tmp_path / "m")
    np.testing.assert_array_equal(
        load_model(tmp_path / "m").score_next([np.array([1, 2])]), m.score_next([np.array([1, 2])])
    )
