"""model=auto: the search chooses on validation only, keeps its budget, and its result is an
ordinary artifact that loads, serves and reports like any other model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recframe.evaluation import evaluate
from recframe.interfaces import ConfigError, Dataset, FitContext, Model
from recframe.model.auto.blend import weight_grid
from recframe.model.auto.holdout import split_validation
from recframe.model.auto.model import AutoModel
from recframe.model.auto.neural import EpochBudget
from recframe.model.hybrid import WeightedHybrid
from tests.helpers.toy import ToySource, ToyTester, markov_events

TRAINER = {"accelerator": "cpu", "max_epochs": 1, "enable_checkpointing": False, "cpu_threads": 1}


def fit_ctx(work: Path | None = None) -> FitContext:
    return FitContext(trainer=dict(TRAINER), work_dir=work, seed=7, progress=False)


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return markov_events(n_sessions=300, n_items=40, seed=1)


@pytest.fixture(scope="module")
def fitted(events: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> tuple[AutoModel, Path]:
    work = tmp_path_factory.mktemp("auto")
    model = AutoModel(max_trials=5, members=["vsknn", "stan", "gru"], max_epochs=1)
    return model.fit(events, None, fit_ctx(work)), work


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("budget_minutes", 0, "model.budget_minutes"),
        ("metric", "auc@20", "model.metric"),
        ("metric", "mrr@0", "model.metric"),
        ("max_trials", 0, "model.max_trials"),
        ("members", ["stan", "xgboost"], "model.members"),
        ("members", [], "model.members"),
        ("members", ["stan", "stan"], "model.members"),
        ("max_epochs", 0, "model.max_epochs"),
    ],
)
def test_a_bad_setting_is_one_config_error_line(key: str, value: object, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        AutoModel(**{key: value})
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_the_result_is_a_hybrid_that_round_trips_and_serves(fitted, events, tmp_path: Path) -> None:
    from recframe.deployer.predictor import Predictor

    model, _ = fitted
    assert isinstance(model, WeightedHybrid) and model.members
    assert set(model.members) <= {"vsknn", "stan", "gru"}
    assert all(m.vocab is model.vocab for m in model.members.values())
    loaded = Model.load(model.save(tmp_path / "artifact"))
    assert isinstance(loaded, AutoModel) and list(loaded.members) == list(model.members)
    assert loaded.weights == model.weights and loaded.search_log["winner"] == model.search_log["winner"]
    sessions = [np.array([0, 3]), np.array([5]), np.array([], dtype=np.int64)]
    assert np.allclose(loaded.score_next(sessions), model.score_next(sessions))
    test = markov_events(60, n_items=40, seed=9, start_session=5000)
    assert evaluate(loaded, test)["mrr@20"] == evaluate(model, test)["mrr@20"]
    answer = Predictor.from_artifact(tmp_path / "artifact").predict(["sku1", "sku2"], k=5)
    assert len(answer["items"]) == 5


def test_trials_are_counted_and_each_records_params_score_seconds(fitted) -> None:
    model, work = fitted
    log = json.loads((work / "auto_search.json").read_text())
    assert log == json.loads(json.dumps(model.search_log, default=str))
    trials = log["trials"]
    assert len(trials) == 5 and [t["number"] for t in trials] == list(range(5))
    assert {t["model"] for t in trials[:2]} == {"vsknn", "stan"}, "every kNN member starts at its start point"
    for t in trials:
        assert t["params"]["k"] >= 1 and 0.0 <= t["score"] <= 1.0 and t["seconds"] >= 0.0
    budget = log["budget"]
    assert budget["mode"] == "trials" and budget["max_trials"] == 5
    assert {"validation", "knn_search", "gru", "blend", "refit"} <= set(budget["stages"])
    assert sum(s["seconds"] for s in budget["stages"].values()) <= budget["used_s"] + 0.01
    assert log["gru"]["epochs"] == 1 and log["validation"]["source"] == "newest training sessions"
    winner = log["winner"]
    assert winner["why"] and winner["score"] >= log["blend"]["best_single"]["score"]


def test_the_same_trials_give_the_same_choice(events) -> None:
    runs = [AutoModel(max_trials=6, members=["sknn", "vstan"]).fit(events, None, fit_ctx()) for _ in range(2)]
    logs = [r.search_log for r in runs]
    assert [t["params"] for t in logs[0]["trials"]] == [t["params"] for t in logs[1]["trials"]]
    assert logs[0]["winner"] == logs[1]["winner"]


def test_the_time_budget_is_kept(events) -> None:
    model = AutoModel(budget_minutes=0.05, members=["sknn", "vsknn", "stan", "vstan", "gru"])
    model.fit(events, None, fit_ctx())
    log = model.search_log
    slowest = max(t["seconds"] for t in log["trials"])
    assert log["budget"]["mode"] == "time"
    assert log["budget"]["stages"]["knn_search"]["seconds"] <= 0.2 * 3.0 + slowest + 0.5
    assert log["gru"] is None, "3 s leave no room for GRU4Rec: it is skipped, not started"
    assert log["budget"]["used_s"] <= 3.0 + slowest + 1.0


def test_epoch_budget_stops_training_when_another_epoch_would_not_fit(events) -> None:
    from recframe.model.seq.gru import GRU4RecModel

    guard = EpochBudget(seconds=0.0)
    trainer = {**TRAINER, "max_epochs": 3, "callbacks": [guard]}
    model = GRU4RecModel(layers=[16], batch_size=8, n_sample=8)
    model.fit(events, None, FitContext(trainer=trainer, progress=False))
    assert guard.stopped_by_budget and model.epochs_run == 1


def test_missing_validation_is_the_newest_training_sessions(events) -> None:
    train, valid, how = split_validation(events, None)
    assert how["sessions"] == valid["session_id"].nunique() > 0
    newest_train = train.groupby("session_id")["ts"].min().max()
    assert valid.groupby("session_id")["ts"].min().min() >= newest_train
    given = markov_events(20, seed=4, start_session=9000)
    assert split_validation(events, given)[1] is given


class FixedSplit(ToySource):
    """The toy data with a test split chosen by the test."""

    def __init__(self, test: pd.DataFrame) -> None:
        super().__init__(n_sessions=300, seed=5)
        self.test = test

    def load(self, work_dir: Path) -> Dataset:
        ds = super().load(work_dir)
        return Dataset(ds.train, ds.valid, self.test, ds.stats)


def random_sessions(like: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Sessions of random catalogue items, as many as ``like`` has, with other ids and times."""
    rng = np.random.default_rng(seed)
    items = like["item_id"].unique()
    rows = [(f"r{s}", str(rng.choice(items)), 10**9 + s * 10 + t) for s in range(80) for t in range(rng.integers(2, 6))]
    return pd.DataFrame(rows, columns=["session_id", "item_id", "ts"])


def test_the_test_split_never_informs_the_choice(tmp_path: Path) -> None:
    from recframe.pipeline import Pipeline

    real = markov_events(60, seed=7, start_session=600)
    choices = []
    for name, test in (("real", real), ("random", random_sessions(real, seed=11))):
        run = tmp_path / name
        model = AutoModel(max_trials=4, members=["sknn", "stan", "gru"], max_epochs=1)
        Pipeline(
            run_dir=run, datasource=FixedSplit(test), model=model, tester=ToyTester(), deployer=None,
            trainer=dict(TRAINER), steps=["data", "train", "test"], seed=3,
        ).run()  # fmt: skip
        saved = json.loads((run / "model" / "model.json").read_text())
        search = json.loads((run / "train" / "auto_search.json").read_text())
        assert search["validation"]["source"] == "given"
        choices.append((search["winner"], [t["params"] for t in search["trials"]], saved["config"]["weights"]))
    assert choices[0] == choices[1]


def test_weight_grid_covers_the_simplex() -> None:
    two = weight_grid(2)
    assert len(two) == 11 and (1.0, 0.0) in two and (0.0, 1.0) in two
    assert all(abs(sum(p) - 1.0) < 1e-9 for p in weight_grid(3)) and len(weight_grid(3)) == 21


def test_the_run_report_shows_the_search(fitted, tmp_path: Path) -> None:
    from recframe.report.run_report import render_report

    model, work = fitted
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "auto_search.json").write_text((work / "auto_search.json").read_text())
    page = render_report(tmp_path)
    assert "Model search" in page and "Why this model" in page
    assert page.count("best of its model") >= 1
    for trial in model.search_log["trials"]:
        assert f"<td>{trial['model']}</td>" in page
    assert "Model search" not in render_report(tmp_path / "other"), "runs of other models have no such section"


def test_knn_winners_keep_items_seen_only_in_validation(events: pd.DataFrame) -> None:
    """kNN members alone take every item of train plus validation, so an item first clicked in
    the newest sessions can be recommended; a vocabulary of train's items alone would drop it."""
    sessions = events["session_id"].unique()
    train = events[events["session_id"].isin(sessions[:250])]
    valid = events[events["session_id"].isin(sessions[250:])].copy()
    first = valid["session_id"].iloc[0]
    valid.loc[valid["session_id"] == first, "item_id"] = [
        "brand-new",
        *valid.loc[valid["session_id"] == first, "item_id"][1:],
    ]
    model = AutoModel(members=["vsknn"], max_trials=2).fit(train, valid, fit_ctx())
    assert "brand-new" not in set(train["item_id"])
    assert "brand-new" in list(model.vocab.items)
    assert list(model.members["vsknn"].vocab.items) == list(model.vocab.items)


def test_loading_the_model_class_does_not_need_optuna() -> None:
    """A serving container has no Optuna: the class an auto artifact names must import without it."""
    import subprocess
    import sys

    code = "import sys, recframe.model.auto.model; assert 'optuna' not in sys.modules, 'optuna imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
