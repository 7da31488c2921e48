"""``auto`` model keys: scaled to the training split in ``fit``, stored resolved, explicit values win."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from recframe.artifact import load_model, save_model
from recframe.interfaces import ConfigError, FitContext
from recframe.model.knn.sknn import SKNN
from recframe.model.knn.stan import STAN
from recframe.model.knn.vsknn import VSKNN
from recframe.model.knn.vstan import VSTAN
from recframe.model.profile import DataProfile
from recframe.model.scaling import GRU_SCALED, gru_defaults, knn_defaults
from recframe.model.seq.gru import GRU4RecModel, training_device
from tests.helpers.toy import markov_events


@pytest.fixture(scope="module")
def toy() -> pd.DataFrame:
    return markov_events(300, 60, seed=3)


@pytest.mark.parametrize("cls", [SKNN, VSKNN, STAN, VSTAN])
def test_knn_models_scale_auto_keys_in_fit_and_store_the_result(cls, toy, tmp_path):
    model = cls().fit(toy)
    expected = knn_defaults(cls.name, DataProfile.of(toy))
    for key, value in model.scaled_params.items():
        assert model.params()[key] == value == expected[key]
    assert "auto" not in model.params().values()
    loaded = load_model(save_model(model, tmp_path / "m"))
    assert loaded.params() == model.params() and loaded.scaled_params == model.scaled_params
    np.testing.assert_allclose(loaded.score_next([np.array([0, 1])]), model.score_next([np.array([0, 1])]))


def test_explicit_knn_values_win(toy):
    model = STAN(k=7, ts_per_day=1.0).fit(toy)
    assert (model.k, model.ts_per_day) == (7, 1.0)
    assert set(model.scaled_params) == {"sample_size"}
    assert VSKNN(k=7, sample_size=30).fit(toy).scaled_params == {}


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (VSKNN, {"k": "many"}, "model.k='many': must be an integer, or auto"),
        (STAN, {"ts_per_day": -1}, "model.ts_per_day=-1"),
        (SKNN, {"sample_size": "Auto"}, "or auto"),
        (GRU4RecModel, {"learning_rate": "fast"}, "model.learning_rate='fast': must be a number, or auto"),
        (GRU4RecModel, {"layers": "wide"}, "model.layers"),
        (GRU4RecModel, {"loss": "hinge"}, "or auto"),
        (GRU4RecModel, {"dropout_p_hidden": 1.5}, "model.dropout_p_hidden=1.5"),
    ],
)
def test_bad_values_are_one_config_error_naming_auto(cls, kwargs, message):
    with pytest.raises(ConfigError) as e:
        cls(**kwargs)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_gru_scales_auto_keys_in_fit_and_keeps_explicit_ones(toy, tmp_path):
    model = GRU4RecModel(layers=[16], steps_per_batch=8)
    assert model.hyperparameters()["learning_rate"] == "auto"
    ctx = FitContext(trainer={"accelerator": "cpu", "max_epochs": 1, "enable_checkpointing": False}, progress=False)
    model.fit(toy, None, ctx)
    hp = model.hyperparameters()
    assert "auto" not in hp.values() and hp["layers"] == [16]
    expected = gru_defaults(DataProfile.of(toy), "cpu")
    assert model.scaled_params == {k: expected[k] for k in GRU_SCALED if k != "layers"}
    assert hp["batch_size"] == expected["batch_size"] == model.training_settings.batch_size
    assert model.fit_summary["scaled_params"] == model.scaled_params
    loaded = load_model(save_model(model, tmp_path / "gru"))
    assert loaded.hyperparameters() == hp


def test_training_device_reads_the_trainer():
    assert training_device({"accelerator": "cpu"}) == "cpu"
    assert training_device({"accelerator": "gpu"}) == "cuda"
    assert training_device(None) == "cpu"
    assert training_device({"accelerator": "auto"}) in ("cpu", "cuda")


def test_explicit_presets_leave_nothing_to_scale(compose_config):
    from recframe.app import instantiate_group

    model = instantiate_group("model", compose_config("experiment=gru4rec_diginetica").model)
    assert "auto" not in model.hyperparameters().values()
    assert dataclasses.asdict(model.training_settings)["n_sample"] == 2048


def test_a_run_logs_tracks_and_reports_the_scaled_parameters(tmp_path):
    from recframe.pipeline import Pipeline
    from recframe.report.run_report import render_report
    from recframe.tracker.csv import CSVTracker
    from tests.helpers.toy import ToySource

    config = {"model.k": "auto", "model.tie_break": "newest"}
    pipeline = Pipeline(
        datasource=ToySource(), model=VSKNN(tie_break="newest"), tester=None, deployer=None, run_dir=tmp_path,
        tracker=CSVTracker(), steps=["data", "train"], params=config,
    )  # fmt: skip
    pipeline.run()
    scaled = json.loads((tmp_path / "train" / "scaled_params.json").read_text())
    assert set(scaled) == {"model.k", "model.sample_size"} and isinstance(scaled["model.k"], int)
    tracked = json.loads(next(tmp_path.rglob("params.json")).read_text())
    assert tracked["model.k"] == "auto" and tracked["scaled.model.k"] == str(scaled["model.k"])
    assert tracked["model.tie_break"] == "newest", "the config's params are kept beside the scaled ones"
    assert "Model parameters scaled to the training data" in render_report(tmp_path)
    assert load_model(tmp_path / "model").params()["k"] == scaled["model.k"]


def test_a_gru_built_without_fit_uses_placeholders_and_round_trips(tmp_path):
    """The speed benchmarks build a random-weight net without fitting: auto keys must not break it."""
    from recframe.vocab import ItemVocab

    model = GRU4RecModel(layers=[8])
    model.vocab = ItemVocab([f"sku{i}" for i in range(12)], list(range(12, 0, -1)))
    model.net = model.build_net(12).eval()
    assert model.hyperparameters()["dropout_p_hidden"] == "auto"
    loaded = load_model(save_model(model, tmp_path / "random"))
    session = [np.array([1, 2])]
    np.testing.assert_allclose(loaded.score_next(session), model.score_next(session), rtol=1e-6)
