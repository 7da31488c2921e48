"""Popularity: the baseline and cold-start fallback scores every session the same way."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recframe.app import instantiate_group
from recframe.evaluation import evaluate
from recframe.interfaces import Model
from recframe.model.pop import PopModel


def toy() -> pd.DataFrame:
    rows = [("s1", "a", 1), ("s1", "b", 2), ("s2", "b", 3), ("s2", "c", 4), ("s3", "b", 5), ("s3", "a", 6)]
    return pd.DataFrame(rows, columns=["session_id", "item_id", "ts"])


def test_scores_are_training_counts_for_every_session():
    m = PopModel().fit(toy())
    scores = m.score_next([np.array([0]), np.array([], dtype=np.int64), np.array([2, 1])])
    assert scores.shape == (3, 3)
    by_sku = {sku: scores[0, i] for sku, i in m.vocab.index.items()}
    assert by_sku == {"b": 3.0, "a": 2.0, "c": 1.0}
    assert (scores == scores[0]).all()


def test_conservative_ties_rank_an_unseen_tie_last():
    m = PopModel().fit(toy())
    test = pd.DataFrame([("t", "c", 1), ("t", "b", 2), ("t", "a", 3)], columns=["session_id", "item_id", "ts"])
    r = evaluate(m, test, ks=(1, 2))
    # targets b (rank 1) then a (rank 2)
    assert r["hr@1"] == pytest.approx(0.5)
    assert r["mrr@2"] == pytest.approx((1 + 1 / 2) / 2)


def test_save_load_round_trip(tmp_path):
    m = PopModel().fit(toy())
    loaded = Model.load(m.save(tmp_path / "pop"))
    s = [np.array([1])]
    np.testing.assert_array_equal(loaded.score_next(s), m.score_next(s))
    assert loaded.vocab.decode(range(3)) == m.vocab.decode(range(3))


def test_config_instantiates_pop(compose_config):
    cfg = compose_config("model=pop")
    assert isinstance(instantiate_group("model", cfg.model), PopModel)
