"""The Predictor: the serving contract without HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recframe.artifact import ArtifactError, load_model
from recframe.deployer.predictor import Predictor, RequestError, ServingLimits
from recframe.interfaces import ConfigError


@pytest.fixture(scope="module")
def predictor(probe_artifact: Path) -> Predictor:
    return Predictor.from_artifact(probe_artifact)


def test_ranking_matches_the_model(predictor: Predictor, probe_artifact: Path) -> None:
    model = load_model(probe_artifact)
    session = ["sku1", "sku2", "sku3"]
    idx, unknown = model.vocab.encode(session)
    scores = np.asarray(model.score_next([idx]))[0]
    scores[idx] = -np.inf
    expected = [str(model.vocab.items[i]) for i in np.argsort(-scores, kind="stable")[:5]]
    got = predictor.predict(session, k=5)
    assert got["items"] == expected
    assert got["unknown"] == 0
    assert got["scores"] == sorted(got["scores"], reverse=True)
    assert len(got["scores"]) == 5


def test_unknown_skus_are_ignored_and_counted(predictor: Predictor) -> None:
    with_unknown = predictor.predict(["nope", "sku1", "??", "sku2"], k=5)
    clean = predictor.predict(["sku1", "sku2"], k=5)
    assert with_unknown["unknown"] == 2
    assert with_unknown["items"] == clean["items"]


def test_exclude_seen_default_and_per_request(predictor: Predictor) -> None:
    session = predictor.example_session(3)
    k = predictor.n_items
    assert not set(session) & set(predictor.predict(session, k=k)["items"])
    assert len(predictor.predict(session, k=k)["items"]) == k - len(set(session))
    assert set(session) <= set(predictor.predict(session, k=k, exclude_seen=False)["items"])
    assert predictor.answer({"session": session, "k": k, "exclude_seen": False})["items"][0] is not None


def test_cold_sessions_get_popular_items(predictor: Predictor, events) -> None:
    popular = events["item_id"].value_counts()
    top = sorted(popular.items(), key=lambda t: (-t[1], t[0]))[:4]
    for session in ([], ["unknown-a", "unknown-b"]):
        got = predictor.predict(session, k=4)
        assert got["items"] == [sku for sku, _ in top]
        assert got["scores"] == [float(c) for _, c in top]
        assert got["unknown"] == len(session)


def test_k_above_catalogue_is_clamped(predictor: Predictor) -> None:
    assert len(predictor.predict([], k=999)["items"]) == predictor.n_items
    session = ["sku1"]
    assert len(predictor.answer({"session": session, "k": 1000})["items"]) == predictor.n_items - 1


def test_batch_equals_single_calls(predictor: Predictor) -> None:
    sessions = [["sku1", "sku2"], [], ["x", "sku5"], ["sku3"] * 4, ["sku9", "sku1", "sku7"]]
    batch = predictor.predict_many(sessions, k=[3, 4, 5, 6, 7], exclude_seen=[True, True, False, True, False])
    for s, k, ex, res in zip(sessions, [3, 4, 5, 6, 7], [True, True, False, True, False], batch, strict=True):
        single = predictor.predict(s, k=k, exclude_seen=ex)
        assert res["items"] == single["items"]
        np.testing.assert_allclose(res["scores"], single["scores"], rtol=1e-5)
    assert predictor.answer({"sessions": sessions, "k": 2})["results"][1]["unknown"] == 0


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ([], "JSON object"),
        (None, "JSON object"),
        ({}, "exactly one of"),
        ({"session": [], "sessions": [[]]}, "exactly one of"),
        ({"session": "sku1"}, "must be a list"),
        ({"session": [None]}, "got null"),
        ({"session": [1.5]}, "got the number 1.5"),
        ({"session": [True]}, "boolean"),
        ({"session": [["nested"]]}, "got a list"),
        ({"session": ["a"], "k": 0}, '"k"'),
        ({"session": ["a"], "k": -1}, '"k"'),
        ({"session": ["a"], "k": 10**9}, '"k"'),
        ({"session": ["a"], "k": 10**400}, "very large"),
        ({"session": ["a"], "k": "5"}, '"k"'),
        ({"session": ["a"], "k": 5.0}, '"k"'),
        ({"session": ["a"], "k": True}, '"k"'),
        ({"session": ["a"], "exclude_seen": "yes"}, "exclude_seen"),
        ({"session": ["a"], "kk": 3}, "unknown field"),
        ({"sessions": []}, "must not be empty"),
        ({"sessions": "a"}, "list of lists"),
        ({"sessions": [["a"], "b"]}, '"sessions"[1]'),
        ({"session": ["a"] * 1001}, "at most 1000"),
        ({"sessions": [["a"]] * 1001}, "at most 1000"),
        ({"session": ["x" * 513]}, "characters"),
    ],
)
def test_malformed_requests_raise_4xx(predictor: Predictor, body, fragment: str) -> None:
    with pytest.raises(RequestError) as e:
        predictor.answer(body)
    assert 400 <= e.value.status < 500
    assert fragment in e.value.message
    json.dumps({"error": e.value.message})  # always encodable


def test_integer_skus_are_strings(predictor: Predictor) -> None:
    q = predictor.parse({"session": [12, "sku1"]})
    assert q.sessions == [["12", "sku1"]]


def test_tampered_artifact_is_refused(probe_artifact: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "art"
    shutil.copytree(probe_artifact, copy)
    with (copy / "weights.pt").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        Predictor.from_artifact(copy)


def test_limits_are_validated() -> None:
    with pytest.raises(ConfigError, match="deployer.max_k"):
        ServingLimits(max_k=0)
    with pytest.raises(ConfigError, match="deployer.default_k"):
        ServingLimits(default_k=20, max_k=10)
