"""`targets: last` (the split's `target` column) is honoured by evaluate() and by the testers: the
metrics cover exactly the sessions' last items, and equal a by-hand computation on those ranks."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recframe.datasource.split import mark_targets
from recframe.evaluation import evaluate, prefix_ranks, target_mask
from recframe.model.knn.vsknn import VSKNN
from recframe.tester.metrics import headline
from recframe.vocab import encode_sessions
from tests.helpers.toy import markov_events


def _data():
    events = markov_events(n_sessions=260, n_items=30, seed=7)
    ids = events["session_id"].unique()
    train = events[events["session_id"].isin(ids[:200])].reset_index(drop=True)
    test = events[events["session_id"].isin(ids[200:])].reset_index(drop=True)
    return train, test


def test_last_item_targets_score_only_the_last_position() -> None:
    train, test = _data()
    model = VSKNN(k=20, sample_size=50).fit(train)
    all_marked, n_all = mark_targets(test, "all")
    last_marked, n_last = mark_targets(test, "last")
    assert n_last < n_all
    assert target_mask(all_marked, model.vocab) is None  # the default protocol: nothing filtered
    full = evaluate(model, all_marked)
    last = evaluate(model, last_marked)
    assert full["targets"] == evaluate(model, test)["targets"]
    sessions = [s for s in encode_sessions(test, model.vocab) if len(s) >= 2]
    ranks = prefix_ranks(model, sessions)
    ends = np.cumsum([len(s) - 1 for s in sessions]) - 1  # each session's last prefix
    assert last["targets"] == len(sessions)
    assert np.isclose(last["mrr@20"], np.mean(np.where(ranks[ends] <= 20, 1.0 / ranks[ends], 0.0)))
    assert last["hr@20"] != full["hr@20"]


def test_tester_headline_uses_the_same_targets() -> None:
    from recframe.interfaces import Dataset

    train, test = _data()
    model = VSKNN(k=20, sample_size=50).fit(train)
    last_marked, _ = mark_targets(test, "last")
    data = Dataset(train=train, valid=pd.DataFrame(columns=train.columns), test=last_marked)
    h = headline(model, data, ks=(5, 20))
    ev = evaluate(model, last_marked)
    assert h.metrics["targets"] == ev["targets"]
    assert np.isclose(h.metrics["mrr@20"], ev["mrr@20"]) and np.isclose(h.metrics["hr@20"], ev["hr@20"])
    session_of, position = h.enc.target_index()
    assert len(session_of) == len(h.scored.ranks)
    assert all(position[i] == len(h.enc.sessions[session_of[i]]) - 1 for i in range(len(position)))
