"""Session-kNN models: hand-computed scores, a loop-by-loop reference, artifacts, validation.

The hand-computed cases use four training sessions (oldest first):

    S1 a b c      S2 b d      S3 a d e      S4 c e e

and the prefix ``a b`` unless said otherwise. Expected values are written as the arithmetic of
the definitions so a reader can check them against the papers without running anything.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recframe.app import instantiate_group
from recframe.evaluation import evaluate
from recframe.interfaces import ConfigError, DataError, Model
from recframe.model.knn.index import encode_prefixes
from recframe.model.knn.sknn import SKNN
from recframe.model.knn.stan import STAN
from recframe.model.knn.vsknn import VSKNN
from recframe.model.knn.vstan import VSTAN
from recframe.model.pop import PopModel
from tests.helpers.knn_reference import reference
from tests.helpers.toy import markov_events

ROOT = Path(__file__).resolve().parents[2]
TOY = [["a", "b", "c"], ["b", "d"], ["a", "d", "e"], ["c", "e", "e"]]
N_SESSIONS = len(TOY)


def events(sessions: list[list[str]], gap: int = 10) -> pd.DataFrame:
    rows = [(f"s{i}", item, i * gap + t) for i, s in enumerate(sessions) for t, item in enumerate(s)]
    return pd.DataFrame(rows, columns=["session_id", "item_id", "ts"])


def scores(model: Model, prefix: list[str]) -> dict[str, float]:
    idx, unknown = model.vocab.encode(prefix)
    assert unknown == 0
    row = np.asarray(model.score_next([idx]))[0]
    return {sku: float(row[i]) for sku, i in model.vocab.index.items()}


def assert_scores(got: dict[str, float], expected: dict[str, float]) -> None:
    full = {sku: expected.get(sku, 0.0) for sku in got}
    for sku in got:
        assert got[sku] == pytest.approx(full[sku], rel=1e-5, abs=1e-7), (sku, got, full)


# ---------------------------------------------------------------------------------------------
# Hand-computed cases
# ---------------------------------------------------------------------------------------------


def test_sknn_cosine_and_jaccard_by_hand():
    m = SKNN(k=10, similarity="cosine").fit(events(TOY))
    s1, s2, s3 = 2 / math.sqrt(2 * 3), 1 / math.sqrt(2 * 2), 1 / math.sqrt(2 * 3)
    assert_scores(scores(m, ["a", "b"]), {"a": s1 + s3, "b": s1 + s2, "c": s1, "d": s2 + s3, "e": s3})
    m = SKNN(k=10, similarity="jaccard").fit(events(TOY))
    s1, s2, s3 = 2 / 3, 1 / 3, 1 / 4
    assert_scores(scores(m, ["a", "b"]), {"a": s1 + s3, "b": s1 + s2, "c": s1, "d": s2 + s3, "e": s3})


@pytest.mark.parametrize(
    ("weighting", "w_a"),  # weight of "a" at position 1 of 2; "b" at position 2 always weighs 1
    [("div", 1 / 2), ("quadratic", 1 / 4), ("same", 1.0), ("log", 1 / math.log10(1 + 1.7)), ("linear", 0.9)],
)
def test_vsknn_position_weighting_by_hand(weighting, w_a):
    m = VSKNN(k=10, weighting=weighting, weighting_score="same").fit(events(TOY))
    w_b = 1.0 if weighting != "log" else 1 / math.log10(1.7)
    s1, s2, s3 = (w_a + w_b) / 2, w_b / 2, w_a / 2  # shared weights over 2 distinct items
    assert_scores(scores(m, ["a", "b"]), {"a": s1 + s3, "b": s1 + s2, "c": s1, "d": s2 + s3, "e": s3})


@pytest.mark.parametrize(
    ("decay", "d2"),  # S1 and S2 share "b" (step 1), S3 only "a" (step 2)
    [("div", 1 / 2), ("quadratic", 1 / 4), ("same", 1.0), ("log", 1 / math.log10(3.7)), ("linear", 0.8)],
)
def test_vsknn_score_decay_by_hand(decay, d2):
    m = VSKNN(k=10, weighting="div", weighting_score=decay).fit(events(TOY))
    d1 = {"div": 1.0, "quadratic": 1.0, "same": 1.0, "log": 1 / math.log10(2.7), "linear": 0.9}[decay]
    s1, s2, s3 = 0.75 * d1, 0.5 * d1, 0.25 * d2
    assert_scores(scores(m, ["a", "b"]), {"a": s1 + s3, "b": s1 + s2, "c": s1, "d": s2 + s3, "e": s3})


def test_vsknn_repeated_item_takes_its_latest_position():
    # prefix a b a: n = 3, a last at 3 (weight 1), b at 2 (2/3); 2 distinct items
    m = VSKNN(k=10).fit(events(TOY))
    s1, s2, s3 = (1 + 2 / 3) / 2, (2 / 3) / 2 / 2, 1 / 2  # S2 shares only b, two steps back
    assert_scores(scores(m, ["a", "b", "a"]), {"a": s1 + s3, "b": s1 + s2, "c": s1, "d": s2 + s3, "e": s3})


def test_vsknn_idf_weighting_by_hand():
    m = VSKNN(k=10, idf_weighting=2.0).fit(events(TOY))
    base = {"a": 0.75 + 0.125, "b": 1.25, "c": 0.75, "d": 0.625, "e": 0.125}
    counts = {"a": 2, "b": 2, "c": 2, "d": 2, "e": 3}  # events, as in session-rec
    expected = {j: s * (1 + 2.0 * math.log(N_SESSIONS / counts[j])) for j, s in base.items()}
    assert_scores(scores(m, ["a", "b"]), expected)


def test_sample_size_keeps_the_most_recent_candidates():
    # candidates of "a b" are S1, S2, S3; the two most recent are S2 and S3
    m = VSKNN(k=10, sample_size=2).fit(events(TOY))
    assert_scores(scores(m, ["a", "b"]), {"b": 0.5, "d": 0.5 + 0.125, "a": 0.125, "e": 0.125})


def test_k_keeps_the_most_similar_and_ties_follow_tie_break():
    m = VSKNN(k=2).fit(events(TOY))
    assert_scores(scores(m, ["a", "b"]), {"a": 0.75, "b": 1.25, "c": 0.75, "d": 0.5})
    # "d" alone: S2 and S3 are equally similar; k=1 keeps the newer (S3) or the older (S2)
    newest = scores(VSKNN(k=1, tie_break="newest").fit(events(TOY)), ["d"])
    oldest = scores(VSKNN(k=1, tie_break="oldest").fit(events(TOY)), ["d"])
    assert_scores(newest, {"a": 1.0, "d": 1.0, "e": 1.0})
    assert_scores(oldest, {"b": 1.0, "d": 1.0})


def test_stan_by_hand():
    m = STAN(k=10, lambda_spw=1.0, lambda_snh=None, lambda_inh=1.0).fit(events(TOY))
    e1 = math.exp(-1)
    norm = math.sqrt(e1**2 + 1)  # weights: a at 1 of 2 -> e^-1, b -> 1
    s1, s2, s3 = (e1 + 1) / (norm * math.sqrt(3)), 1 / (norm * math.sqrt(2)), e1 / (norm * math.sqrt(3))
    # anchors: S1 -> b (position 2), S2 -> b (1), S3 -> a (1); items decay exp(-distance)
    expected = {
        "a": s1 * e1 + s3,
        "b": s1 + s2,
        "c": s1 * e1,
        "d": s2 * e1 + s3 * e1,
        "e": s3 * math.exp(-2),
    }
    assert_scores(scores(m, ["a", "b"]), expected)


def test_stan_session_recency_decay_and_duplicates_in_neighbours():
    # prefix "c": neighbours S1 (ends at ts 2) and S4 (ends at ts 32, the newest; e last at 3)
    m = STAN(k=10, lambda_spw=None, lambda_snh=10.0, lambda_inh=1.0, ts_per_day=1.0).fit(events(TOY))
    s1 = 1 / math.sqrt(3) * math.exp(-(32 - 2) / 10)
    s4 = 1 / math.sqrt(2)
    expected = {"a": s1 * math.exp(-2), "b": s1 * math.exp(-1), "c": s1 + s4, "e": s4 * math.exp(-2)}
    assert_scores(scores(m, ["c"]), expected)


def test_vstan_adds_prefix_decay_and_idf():
    kw = {"lambda_spw": None, "lambda_snh": None, "lambda_inh": None}
    base = STAN(k=10, **kw).fit(events(TOY))
    m = VSTAN(k=10, lambda_ipw=1.0, lambda_idf=None, **kw).fit(events(TOY))
    s1, s2, s3 = 2 / math.sqrt(6), 1 / 2, 1 / math.sqrt(6)  # plain cosine
    d3 = math.exp(-1)  # S3 shares only "a", one step before the end
    expected = {"a": s1 + s3 * d3, "b": s1 + s2, "c": s1, "d": s2 + s3 * d3, "e": s3 * d3}
    assert_scores(scores(m, ["a", "b"]), expected)
    assert_scores(scores(base, ["a", "b"]), {"a": s1 + s3, "b": s1 + s2, "c": s1, "d": s2 + s3, "e": s3})
    vec = VSTAN(k=10, similarity="vec", lambda_ipw=None, lambda_idf=None, **kw).fit(events(TOY))
    assert_scores(scores(vec, ["a", "b"]), {"a": 1 + 0.5, "b": 1 + 0.5, "c": 1, "d": 0.5 + 0.5, "e": 0.5})
    m = VSTAN(k=10, lambda_ipw=None, lambda_idf=1.0, **kw).fit(events(TOY))
    idf_e = math.log(N_SESSIONS / 3)
    idf_other = math.log(N_SESSIONS / 2)
    got = scores(m, ["a", "b"])
    assert got["e"] == pytest.approx(s3 * (1 + idf_e))
    assert got["c"] == pytest.approx(s1 * (1 + idf_other))


# ---------------------------------------------------------------------------------------------
# Against a loop-by-loop reference of the session-rec definitions, on random data
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        SKNN(k=1000, sample_size=40),
        VSKNN(k=1000, sample_size=30, weighting="quadratic", weighting_score="div", idf_weighting=5.0),
        VSKNN(k=1000, sample_size=0, weighting="div", weighting_score="quadratic"),
        VSKNN(k=1000, sample_size=30, weighting="linear", weighting_score="log"),
        VSKNN(k=1000, sample_size=30, weighting="log", weighting_score="linear"),
        STAN(k=1000, sample_size=40, lambda_snh=None),
        VSTAN(k=1000, sample_size=40, lambda_snh=None, lambda_spw=2.0),
    ],
    ids=["sknn", "vsknn-tuned", "vsknn-all", "vsknn-linear-log", "vsknn-log-linear", "stan", "vstan"],
)
def test_vectorised_scores_match_the_reference_loop(model):
    rng = np.random.default_rng(7)
    train_df = markov_events(150, n_items=30, seed=3)
    model.fit(train_df)
    codes = model.vocab.encode_column(train_df["item_id"])
    starts = np.flatnonzero(
        np.r_[True, train_df["session_id"].to_numpy()[1:] != train_df["session_id"].to_numpy()[:-1]]
    )
    train = [list(map(int, c)) for c in np.split(codes, starts[1:])]  # markov_events: oldest first
    prefixes = [list(map(int, rng.integers(0, len(model.vocab), rng.integers(1, 7)))) for _ in range(40)]
    got = np.asarray(model.score_next([np.asarray(p) for p in prefixes]))
    for p, row in zip(prefixes, got, strict=True):
        want = reference(model, train, p, model.vocab.counts).scores
        np.testing.assert_allclose(row, want, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Behaviour, artifacts, validation
# ---------------------------------------------------------------------------------------------


def test_prefix_encoding_keeps_last_positions():
    b = encode_prefixes([np.array([3, 1, 3]), np.array([], dtype=np.int64), np.array([2])])
    assert b.lengths.tolist() == [3, 0, 1]
    pairs = sorted(zip(b.rows.tolist(), b.items.tolist(), b.last_pos.tolist(), strict=True))
    assert pairs == [(0, 1, 2), (0, 3, 3), (2, 2, 1)]
    assert b.n_distinct.tolist() == [2, 0, 1]


@pytest.mark.parametrize("cls", [SKNN, VSKNN, STAN, VSTAN])
def test_knn_beats_pop_on_a_learnable_sequence(cls):
    train = markov_events(400, seed=0)
    test = markov_events(80, seed=1, start_session=400)
    knn = evaluate(cls(k=50, sample_size=200).fit(train), test, ks=(5,))
    pop = evaluate(PopModel().fit(train), test, ks=(5,))
    assert knn["hr@5"] > pop["hr@5"] + 0.1
    if cls is not SKNN:  # S-KNN ignores order, so on a chain it ranks the item just seen too high for MRR
        assert knn["mrr@5"] > pop["mrr@5"]


@pytest.mark.parametrize(
    "model",
    [SKNN(k=20), VSKNN(k=20, weighting="quadratic", idf_weighting=5.0), STAN(k=20), VSTAN(k=20, lambda_spw=None)],
    ids=["sknn", "vsknn", "stan", "vstan"],
)
def test_save_load_round_trip_scores_identically(model, tmp_path):
    train = markov_events(200, seed=0)
    model.fit(train)
    sessions = [np.array([0, 1, 2]), np.array([5]), np.array([], dtype=np.int64), np.array([3, 3, 7, 1])]
    before = np.asarray(model.score_next(sessions))
    loaded = Model.load(model.save(tmp_path / "m"))
    assert type(loaded) is type(model)
    assert loaded.params() == model.params()
    np.testing.assert_array_equal(np.asarray(loaded.score_next(sessions)), before)
    weights = (tmp_path / "m" / "weights.pt").read_bytes()
    assert b"session_indptr" in weights  # plain index/value arrays, no pickled objects


def test_empty_session_gets_popularity_and_unfitted_model_refuses():
    m = VSKNN().fit(events(TOY))
    row = np.asarray(m.score_next([np.array([], dtype=np.int64)]))[0]
    assert int(np.argmax(row)) == m.vocab.index["e"]  # the most frequent item
    with pytest.raises(DataError, match="fit"):
        VSKNN().score_next([np.array([0])])
    with pytest.raises(DataError, match=r"\[0, 5\)"):
        m.score_next([np.array([5])])


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (SKNN, {"k": 0}, "model.k=0"),
        (SKNN, {"similarity": "dice"}, "model.similarity='dice'"),
        (VSKNN, {"sample_size": -1}, "model.sample_size=-1"),
        (VSKNN, {"weighting": "exp"}, "model.weighting='exp'"),
        (VSKNN, {"weighting_score": "div_score"}, "model.weighting_score='div_score'"),
        (VSKNN, {"idf_weighting": -1}, "model.idf_weighting=-1"),
        (VSKNN, {"tie_break": "random"}, "model.tie_break='random'"),
        (STAN, {"lambda_spw": 0}, "model.lambda_spw=0"),
        (STAN, {"lambda_inh": "2"}, "model.lambda_inh='2'"),
        (STAN, {"ts_per_day": 0}, "model.ts_per_day=0"),
        (VSTAN, {"lambda_ipw": -1.0}, "model.lambda_ipw=-1.0"),
        (VSTAN, {"similarity": "jaccard"}, "model.similarity='jaccard'"),
        (VSTAN, {"k": 2.5}, "model.k=2.5"),
    ],
)
def test_constructor_rejects_bad_values(cls, kwargs, message):
    with pytest.raises(ConfigError) as e:
        cls(**kwargs)
    assert message in str(e.value)


@pytest.mark.parametrize(("name", "cls"), [("sknn", SKNN), ("vsknn", VSKNN), ("stan", STAN), ("vstan", VSTAN)])
def test_configs_instantiate_with_the_constructor_defaults(name, cls, compose_config):
    model = instantiate_group("model", compose_config(f"model={name}").model)
    assert type(model) is cls
    assert model.params() == cls().params()


def test_diginetica_preset_holds_the_tuned_parameters(compose_config):
    model = instantiate_group("model", compose_config("experiment=vsknn_diginetica").model)
    assert type(model) is VSKNN
    assert (model.k, model.sample_size, model.weighting, model.weighting_score, model.idf_weighting) == (
        500,
        5000,
        "quadratic",
        "div",
        5.0,
    )


def test_accuracy_benchmark_prints_one_json_line(tmp_path, capsys):
    """benchmarks/accuracy.py end to end on tiny TSV files, in-process (importing it by path)."""
    import importlib.util
    import json

    for name, (n, seed, start) in {"train": (300, 0, 0), "test": (40, 1, 300)}.items():
        ev = markov_events(n, seed=seed, start_session=start)
        ev.rename(columns={"session_id": "SessionId", "item_id": "ItemId", "ts": "Time"}).to_csv(
            tmp_path / f"{name}.tsv.gz", sep="\t", index=False
        )
    spec = importlib.util.spec_from_file_location("accuracy_benchmark", ROOT / "benchmarks" / "accuracy.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    argv = [
        "--dataset",
        str(tmp_path),
        "--models",
        "pop,vsknn",
        "--set",
        "vsknn.k=20",
        "--set",
        "model.tie_break=oldest",
    ]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    assert list(summary["sides"]) == ["pop", "vsknn"]
    pop, knn = summary["sides"].values()
    assert knn["hr@20"] > pop["hr@20"]
    common = {"wall_s", "cpu_s", "peak_rss_mb", "output_hash"}
    assert common | {"hr@20", "mrr@20", "ndcg@20", "train_s", "eval_s", "transitions_per_s", "events_per_s"} <= set(knn)
    assert knn["device"] == "cpu" and knn["output_hash"] != pop["output_hash"]
    assert knn["transitions"] == knn["events"] - 300  # 300 training sessions
