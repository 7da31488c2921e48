"""The reclist tester: a real RecList subclass, its report layout, gates, invariants, Comet logging."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from reclist.reclist import RecList

from recframe.interfaces import ConfigError, Dataset
from recframe.tester.reclist_suite import RecframeSuite, ReclistTester, TrackerCometLogger

TESTS = ["accuracy", "beyond_accuracy", "slices", "perturbations", "less_wrong", "invariants"]


@pytest.fixture(scope="module")
def markov_run(tmp_path_factory: pytest.TempPathFactory, dataset: Dataset, markov):
    run_dir = tmp_path_factory.mktemp("run")
    tester = ReclistTester(gates={"hr@20": ">= 1.2 * baseline_pop", "coverage@20": ">= 0.05"}, n_samples=300)
    return run_dir, tester.run(markov, dataset, run_dir / "report")


def test_suite_is_a_reclist_with_rec_tests(dataset: Dataset, markov, tmp_path: Path) -> None:
    suite = ReclistTester().suite(markov, dataset, tmp_path)
    assert isinstance(suite, RecList) and isinstance(suite, RecframeSuite)
    assert sorted(suite.rec_tests) == sorted(TESTS)
    for test in suite.rec_tests.values():
        assert test.is_test and test.test_desc  # the docstring is the description


def test_report_keeps_reclist_layout(markov_run) -> None:
    run_dir, result = markov_run
    report = json.loads((run_dir / "report" / "report.json").read_text())
    assert report["metadata"]["reclist"] == "RecframeSuite"
    assert report["metadata"]["model_name"] == "markov"
    assert sorted(report["metadata"]["tests"]) == sorted(TESTS)
    assert sorted(d["name"] for d in report["data"]) == sorted(TESTS)
    for d in report["data"]:
        assert set(d) == {"name", "description", "result", "display_type"}
    assert report["passed"] is True and result.passed
    for name in ("accuracy", "slices", "perturbations"):
        assert (run_dir / "report" / "plots" / f"{name}.svg").read_text().startswith("<svg")


def test_metrics_and_behaviour(markov_run) -> None:
    _, result = markov_run
    m = result.metrics
    assert m["model"] == "markov" and m["hr@20"] > 1.5 * m["baseline_pop"]["hr@20"]
    assert m["invariants_passed"] == 1.0
    assert 0 < m["shuffle_jaccard@20"] < 1  # a sequence model reacts to order
    by_name = {d["name"]: d["result"] for d in result.report["data"]}
    acc = by_name["accuracy"]
    assert set(acc) == {f"{f}@{k}" for f in ("hr", "mrr", "ndcg") for k in (1, 5, 10, 20)}
    assert set(acc["hr@20"]) == {"model", "pop"}
    slices = by_name["slices"]
    assert set(slices) == {"session_length", "target_popularity", "category", "last_action"}
    assert set(slices["last_action"]) <= {"detail", "add", "purchase"}
    assert sum(b["n"] for b in slices["target_popularity"].values()) == m["targets"]
    inv = by_name["invariants"]
    assert set(inv) == {"catalogue_only", "exclude_seen", "deterministic", "batch_independent"}
    # the serving predictor excludes session items even though the raw model repeats them
    assert inv["exclude_seen"]["serving_lists_with_seen_items"] == 0
    assert inv["exclude_seen"]["raw_lists_with_seen_items_share"] > 0
    assert "embedding" in by_name["less_wrong"] and "cooccurrence" in by_name["less_wrong"]


def test_random_model_is_gated(tmp_path: Path, dataset: Dataset, random_model) -> None:
    result = ReclistTester(gates={"hr@20": ">= 1.2 * baseline_pop"}, n_samples=200).run(
        random_model, dataset, tmp_path / "r"
    )
    assert not result.passed
    assert result.failures[0].startswith("gate hr@20 >= 1.2 * baseline_pop FAILED: value ")
    # the popularity-like random model ignores the session entirely
    assert result.metrics["shuffle_jaccard@20"] == 1.0


def test_flaky_model_fails_invariants(tmp_path: Path, dataset: Dataset, flaky_model) -> None:
    model = flaky_model
    result = ReclistTester(gates={}, n_samples=200).run(model, dataset, tmp_path / "report")
    failed = {line.split()[1] for line in result.failures}
    assert {"catalogue_only", "deterministic", "batch_independent"} <= failed
    assert result.report["invariants_failed"]
    lenient = ReclistTester(gates={}, n_samples=200, fail_on_invariants=False)
    assert lenient.run(model, dataset, tmp_path / "r2").passed


def test_exclude_seen_invariant(tmp_path: Path, dataset: Dataset, markov) -> None:
    """Markov recommends items already in the session, so exclude_seen=true must flag it."""
    result = ReclistTester(gates={}, n_samples=200, exclude_seen=True).run(markov, dataset, tmp_path / "report")
    assert any(line.startswith("invariant exclude_seen FAILED") for line in result.failures)


def test_without_catalogue_or_actions(tmp_path: Path, dataset: Dataset, markov) -> None:
    bare = Dataset(dataset.train, dataset.valid, dataset.test.drop(columns=["action"]), {}, None)
    result = ReclistTester(gates={}, n_samples=100).run(markov, bare, tmp_path / "report")
    by_name = {d["name"]: d["result"] for d in result.report["data"]}
    assert "skipped" in by_name["slices"]["category"] and "skipped" in by_name["slices"]["last_action"]
    assert "skipped" in by_name["perturbations"]["replace_last_same_category"]
    assert result.passed


class FakeCometExperiment:
    """Records calls like comet_ml.Experiment (its module name is what the tester looks for)."""

    __module__ = "comet_ml.fake"

    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}
        self.assets: list[str] = []

    def log_metric(self, name: str, value: float) -> None:
        self.metrics[name] = value

    def log_asset_data(self, data: str, name: str) -> None:
        self.assets.append(name)


class FakeTracker:
    def __init__(self) -> None:
        self.experiment = FakeCometExperiment()


def test_comet_logger_used_with_comet_tracker(tmp_path: Path, dataset: Dataset, markov) -> None:
    tracker = FakeTracker()
    tester = ReclistTester(gates={}, n_samples=100, tracker=tracker)
    assert isinstance(tester.suite(markov, dataset, tmp_path).logger_service, TrackerCometLogger)
    tester.run(markov, dataset, tmp_path / "report")
    exp = tracker.experiment
    assert exp.metrics["reclist/accuracy/hr@20/model"] > 0
    assert "reclist/accuracy.svg" in exp.assets


def test_comet_logger_without_tracker_is_config_error(tmp_path: Path, dataset: Dataset, markov) -> None:
    with pytest.raises(ConfigError, match="tester.logger"):
        ReclistTester(logger="comet").run(markov, dataset, tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"n_samples": 0}, "tester.n_samples"),
        ({"logger": "neptune"}, "tester.logger"),
        ({"exclude_seen": "no"}, "tester.exclude_seen"),
        ({"gates": {"shuffle_jaccard@10": ">= 0.1"}}, "tester.gates.shuffle_jaccard@10"),
    ],
)
def test_constructor_validates(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        ReclistTester(**kwargs)
    assert e.value.key == key


def test_behavioural_gate_accepted() -> None:
    assert ReclistTester(gates={"invariants_passed": ">= 1", "shuffle_jaccard@20": "< 1"}).gates


def test_yaml_instantiates(compose_config) -> None:
    from recframe.app import instantiate_group

    tester = instantiate_group("tester", compose_config("tester=reclist", "seed=7").tester)
    assert isinstance(tester, ReclistTester) and tester.seed == 7 and tester.gates[0].metric == "hr@20"


def test_real_comet_offline_experiment(tmp_path: Path, dataset: Dataset, markov) -> None:
    """With the real comet tracker (offline: no key, no network) the suite's results land in its archive."""
    pytest.importorskip("comet_ml")
    import zipfile

    from recframe.tracker.comet import CometTracker

    tracker = CometTracker(online=False)
    tracker.start(tmp_path, "run-1")
    try:
        ReclistTester(gates={}, n_samples=100, tracker=tracker).run(markov, dataset, tmp_path / "report")
    finally:
        tracker.close()
    archives = list((tmp_path / "comet").glob("*.zip"))
    assert archives
    with zipfile.ZipFile(archives[0]) as z:
        blob = b"".join(z.read(n) for n in z.namelist())
    assert b"reclist/accuracy/hr@20/model" in blob
