"""Training settings: the flat yaml keys become one typed, frozen, checked object per sequence model."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from recframe.interfaces import ConfigError
from recframe.model.seq.gru import GRU4RecModel
from recframe.model.seq.lstm import LSTMModel
from recframe.model.seq.sasrec import SASRecModel
from recframe.model.seq.settings import GRU4RecTrainingSettings, PaddedTrainingSettings, TrainingSettings

MODELS = [GRU4RecModel, LSTMModel, SASRecModel]


@pytest.mark.parametrize("cls", MODELS)
def test_constructor_defaults_reach_the_settings_and_hyperparameters_stay_flat(cls):
    model = cls()
    params = inspect.signature(cls.__init__).parameters
    explicit = [n for n, p in params.items() if n != "self" and p.kind is not p.VAR_KEYWORD]
    settings = dataclasses.asdict(model.training_settings)
    hp = model.hyperparameters()
    for name, value in settings.items():
        if name in params and params[name].default == "auto":  # scaled to the data in fit; reads auto until then
            assert hp[name] == "auto", name
        elif name in params:  # a key the constructor names keeps its default in the settings
            assert params[name].default == value, name
    # the artifact's keys: the constructor's own, then every training key, each once
    assert list(hp) == explicit + [n for n in settings if n not in explicit]
    rebuilt = cls(**hp)
    assert rebuilt.training_settings == model.training_settings


@pytest.mark.parametrize("cls", [LSTMModel, SASRecModel])
def test_an_unknown_training_key_is_one_config_error(cls):
    with pytest.raises(ConfigError, match="model.n_epochs"):
        cls(n_epochs=3)


@pytest.mark.parametrize("cls", MODELS)
def test_overrides_land_in_the_settings_not_on_the_model(cls):
    model = cls(learning_rate=0.123, batch_size=7, patience=0)
    assert (model.training_settings.learning_rate, model.training_settings.batch_size) == (0.123, 7)
    assert model.training_settings.patience == 0
    assert model.hyperparameters()["learning_rate"] == 0.123
    assert not hasattr(model, "learning_rate")


def test_settings_are_frozen():
    s = PaddedTrainingSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.learning_rate = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("cls", "kwargs", "key"),
    [
        (TrainingSettings, {"learning_rate": 0}, "model.learning_rate"),
        (TrainingSettings, {"resume": "yes"}, "model.resume"),
        (PaddedTrainingSettings, {"n_sample": 0}, "model.n_sample"),
        (PaddedTrainingSettings, {"loss": "bpr-max"}, "model.loss"),
        (GRU4RecTrainingSettings, {"loss": "auto"}, "model.loss"),
        (GRU4RecTrainingSettings, {"momentum": 1.0}, "model.momentum"),
        (GRU4RecTrainingSettings, {"steps_per_batch": 0}, "model.steps_per_batch"),
    ],
)
def test_bad_values_name_their_config_key(cls, kwargs, key):
    with pytest.raises(ConfigError, match=key):
        cls(**kwargs)


def test_gru4rec_allows_in_batch_negatives_only():
    assert GRU4RecTrainingSettings(n_sample=0).n_sample == 0  # padded models need >= 1 sampled negative
