"""Vocabulary, artifacts and full-ranking evaluation: the contracts every model relies on."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recframe.artifact import ArtifactError, load_model
from recframe.evaluation import metrics_from_ranks, ranks_of_targets, ranks_on_device
from recframe.interfaces import Model
from recframe.model.pop import PopModel
from recframe.vocab import ItemVocab, encode_sessions
from tests.helpers.toy import markov_events


def test_vocab_orders_by_popularity_and_counts_unknown():
    events = markov_events(50)
    vocab = ItemVocab.from_events(events)
    assert list(vocab.counts) == sorted(vocab.counts, reverse=True)
    idx, unknown = vocab.encode([vocab.items[3], "nope", vocab.items[0]])
    assert list(idx) == [3, 0] and unknown == 1
    assert vocab.decode(idx) == [vocab.items[3], vocab.items[0]]
    assert ItemVocab.from_dict(vocab.to_dict()).index == vocab.index


def test_encode_sessions_splits_by_session_and_drops_unknown():
    events = markov_events(20)
    vocab = ItemVocab.from_events(events.iloc[:30])
    sessions = encode_sessions(events, vocab)
    assert all((s >= 0).all() for s in sessions)
    assert sum(len(s) for s in sessions) == int(events["item_id"].isin(set(vocab.items)).sum())


def test_ties_count_against_the_target():
    scores = np.zeros((2, 10), dtype=np.float32)  # every item ties
    assert list(ranks_of_targets(scores, [3, 7])) == [10, 10]
    scores[0, 3] = 1.0
    assert ranks_of_targets(scores, [3, 7])[0] == 1


def test_ranks_on_device_count_as_numpy_does():
    """The torch count (used for GPU scores) agrees with the numpy count: ties, NaN, +/-inf, bf16."""
    import torch

    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=(64, 40)).astype(np.float32)  # many ties
    scores[3, :] = np.nan
    scores[4, 7] = np.nan
    scores[5, [1, 2]] = np.inf
    scores[6, 9] = -np.inf
    targets = rng.integers(0, 40, size=64)
    targets[4], targets[5], targets[6] = 7, 1, 9  # a NaN target ranks last, tied +inf, -inf
    expected = ranks_of_targets(scores, targets)
    got = ranks_on_device(torch.from_numpy(scores), targets)
    assert got.dtype == np.int64 and np.array_equal(got, expected)
    assert expected[3] == 40 and expected[4] == 40 and expected[5] == 2 and expected[6] == 40
    as_bf16 = torch.from_numpy(scores).bfloat16()  # small integers are exact in bf16
    assert np.array_equal(ranks_on_device(as_bf16, targets), expected)


def test_metrics_from_ranks_by_hand():
    m = metrics_from_ranks(np.array([1, 2, 30]), ks=(1, 20))
    assert m["hr@1"] == pytest.approx(1 / 3)
    assert m["hr@20"] == pytest.approx(2 / 3)
    assert m["mrr@20"] == pytest.approx((1 + 0.5) / 3)
    assert m["ndcg@20"] == pytest.approx((1 + 1 / np.log2(3)) / 3)


def test_artifact_round_trip_and_tamper_detection(tmp_path):
    model = PopModel().fit(markov_events(50))
    model.save(tmp_path / "m")
    loaded = Model.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.score_next([np.array([1])]), model.score_next([np.array([1])]))
    vocab = json.loads((tmp_path / "m" / "vocab.json").read_text())
    vocab["items"][0] = "evil"
    (tmp_path / "m" / "vocab.json").write_text(json.dumps(vocab))
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        load_model(tmp_path / "m")


def test_artifact_refuses_a_class_that_is_not_a_model(tmp_path):
    import hashlib

    PopModel().fit(markov_events(20)).save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    meta["target"] = "os.system"
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    sums = json.loads((tmp_path / "m" / "checksums.json").read_text())
    sums["sha256"]["model.json"] = hashlib.sha256((tmp_path / "m" / "model.json").read_bytes()).hexdigest()
    (tmp_path / "m" / "checksums.json").write_text(json.dumps(sums))
    with pytest.raises(ArtifactError, match="not a recframe Model"):
        load_model(tmp_path / "m")


def _rewrite_model_json(artifact, edit) -> None:
    """Change model.json the way an older recframe wrote it, keeping the checksums valid."""
    import hashlib

    path = artifact / "model.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))
    sums = json.loads((artifact / "checksums.json").read_text())
    sums["sha256"]["model.json"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (artifact / "checksums.json").write_text(json.dumps(sums))


def test_artifacts_naming_a_moved_model_class_still_load(tmp_path):
    from recframe.artifact import MOVED_TARGETS, _resolve
    from recframe.model.hybrid import WeightedHybrid
    from recframe.model.knn.stan import STAN
    from recframe.model.knn.vsknn import VSKNN

    for old, new in MOVED_TARGETS.items():
        assert _resolve(old) is _resolve(new)
        assert f"{_resolve(old).__module__}.{_resolve(old).__qualname__}" == new
    events = markov_events(80)
    sessions = [np.array([1, 2]), np.array([3])]
    vsknn = VSKNN(k=10, sample_size=50).fit(events)
    vsknn.save(tmp_path / "vsknn")
    _rewrite_model_json(tmp_path / "vsknn", lambda m: m.update(target="recframe.model.knn.VSKNN"))
    loaded = load_model(tmp_path / "vsknn")
    assert type(loaded) is VSKNN
    np.testing.assert_array_equal(loaded.score_next(sessions), vsknn.score_next(sessions))

    hybrid = WeightedHybrid({"stan": STAN(k=10, sample_size=50), "pop": PopModel()}, {"stan": 0.5, "pop": 0.5})
    hybrid.fit(events).save(tmp_path / "hybrid")

    def old_member(meta):
        assert meta["config"]["members"]["stan"]["target"] == "recframe.model.knn.stan.STAN"
        meta["config"]["members"]["stan"]["target"] = "recframe.model.knn_stan.STAN"

    _rewrite_model_json(tmp_path / "hybrid", old_member)
    np.testing.assert_array_equal(load_model(tmp_path / "hybrid").score_next(sessions), hybrid.score_next(sessions))


def test_missing_artifact_is_a_clear_error(tmp_path):
    with pytest.raises(ArtifactError, match="run the 'train' step"):
        load_model(tmp_path / "nothing")
