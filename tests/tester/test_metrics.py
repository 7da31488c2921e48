"""MetricsTester: the metrics.json layout, the pop baseline, the closed-form ranking, gates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recframe.evaluation import evaluate
from recframe.interfaces import ConfigError, Dataset
from recframe.model.pop import PopModel
from recframe.tester.metrics import MetricsTester
from recframe.tester.none import NoneTester
from recframe.tester.scoring import constant_ranking, coverage_at_k, popularity_bias_at_k, score_model


def test_metrics_layout_and_baseline(tmp_path: Path, dataset: Dataset, markov) -> None:
    result = MetricsTester(gates={"hr@20": ">= 1.5 * baseline_pop"}).run(markov, dataset, tmp_path / "report")
    m = result.metrics
    assert m["model"] == "markov"
    for k in (1, 5, 10, 20):
        for f in ("hr", "mrr", "ndcg", "coverage", "popbias"):
            assert 0.0 <= m[f"{f}@{k}"] <= 1.0
            assert f"{f}@{k}" in m["baseline_pop"]
    assert m["hr@20"] > 1.5 * m["baseline_pop"]["hr@20"]
    assert result.passed and result.failures == []
    json.dumps(m)  # metrics.json must serialise as is
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["gates"][0]["passed"] is True
    assert (tmp_path / "report" / "index.html").exists()


def test_matches_reference_evaluation(dataset: Dataset, markov, tmp_path: Path) -> None:
    """Same numbers as recframe.evaluation for the model and for a pop model scored the slow way."""
    m = MetricsTester().run(markov, dataset, tmp_path).metrics
    ref = evaluate(markov, dataset.test)
    for key in ("hr@1", "hr@20", "mrr@20", "ndcg@10"):
        assert m[key] == pytest.approx(ref[key])
    assert m["targets"] == ref["targets"]
    pop = PopModel().fit(dataset.train)
    pop_ref = evaluate(pop, dataset.test)
    for key in ("hr@5", "hr@20", "mrr@20", "ndcg@20"):
        assert m["baseline_pop"][key] == pytest.approx(pop_ref[key])


def test_constant_ranking_equals_batched_pass(dataset: Dataset) -> None:
    pop = PopModel().fit(dataset.train)
    sessions = [np.array([0, 3, 5, 3]), np.array([7, 1])]
    slow = score_model(pop, sessions, 10)
    targets = np.array([3, 5, 3, 1])
    fast = constant_ranking(pop.vocab.popularity(), targets, 10)
    np.testing.assert_array_equal(slow.ranks, fast.ranks)
    np.testing.assert_array_equal(slow.topk[:, :1], fast.topk[:, :1])


def test_gate_stops_random_model(tmp_path: Path, dataset: Dataset, random_model) -> None:
    tester = MetricsTester(gates={"hr@20": ">= 1.2 * baseline_pop", "coverage@20": ">= 0.05"})
    result = tester.run(random_model, dataset, tmp_path / "report")
    assert not result.passed
    assert any(line.startswith("gate hr@20 >= 1.2 * baseline_pop FAILED") for line in result.failures)


def test_per_row_beyond_accuracy_definitions() -> None:
    topk = np.array([[0, 1], [2, 3], [0, 4]])
    assert coverage_at_k(topk, 10, 2) == pytest.approx(5 / 10)  # each row's top 2, not the first 2 rows
    assert coverage_at_k(topk, 10, 1) == pytest.approx(2 / 10)
    pop = np.array([10.0, 5, 5, 0, 0, 0, 0, 0, 0, 0])
    # rows: (1 + .5)/2, (.5 + 0)/2, (1 + 0)/2 -> mean .5
    assert popularity_bias_at_k(topk, pop, 2) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"k": 0}, "tester.k"),
        ({"ks": []}, "tester.ks"),
        ({"ks": [5, "x"]}, "tester.ks[1]"),
        ({"batch_size": 0}, "tester.batch_size"),
        ({"gates": {"hr@20": ">= lots"}}, "tester.gates.hr@20"),
        ({"gates": {"hr@50": ">= 0.1"}}, "tester.gates.hr@50"),
        ({"html": "yes"}, "tester.html"),
    ],
)
def test_constructor_validates(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        MetricsTester(**kwargs)
    assert e.value.key == key


def test_k_joins_ks() -> None:
    assert MetricsTester(k=50, ks=[5]).ks == [5, 50]


def test_none_tester(tmp_path: Path, dataset: Dataset, markov) -> None:
    result = NoneTester().run(markov, dataset, tmp_path / "report")
    assert result.passed and result.metrics == {"model": "markov"}
    assert json.loads((tmp_path / "report" / "report.json").read_text())["skipped"] is True


def test_hydra_configs_instantiate(compose_config) -> None:
    from recframe.app import instantiate_group

    for name, cls in (("metrics", MetricsTester), ("none", NoneTester)):
        obj = instantiate_group("tester", compose_config(f"tester={name}").tester)
        assert isinstance(obj, cls)


@pytest.mark.parametrize("seed", range(5))
def test_fast_rank_matches_reference_with_ties_nan_inf(seed: int) -> None:
    """The top-k shortcut gives the reference's conservative rank wherever it is <= k, and k + 1 beyond."""
    from recframe.evaluation import ranks_of_targets
    from recframe.tester.scoring import _rank_and_topk

    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, size=(300, 40)).astype(np.float32)  # heavy ties
    scores[rng.random(scores.shape) < 0.03] = np.nan
    scores[rng.random(scores.shape) < 0.02] = np.inf
    scores[rng.random(scores.shape) < 0.05] = -np.inf
    scores[:5] = 1.0  # constant rows: every target ranks last
    targets = rng.integers(0, 40, size=300)
    ref = ranks_of_targets(scores, targets)
    for k in (1, 5, 20, 40, 60):
        ranks, top, _ = _rank_and_topk(scores, targets, k)
        np.testing.assert_array_equal(np.minimum(ref, k + 1), np.minimum(ranks, k + 1))
        assert top.shape == (300, min(k, 40))
        assert (ranks[:5] == min(40, k + 1)).all()
