"""The weighted hybrid: the blend is exactly the weighted sum of normalised member scores, it
survives an artifact round trip, composes from Hydra, and refuses bad weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recframe.app import instantiate_group
from recframe.evaluation import evaluate
from recframe.interfaces import ConfigError, FitContext, Model
from recframe.model.hybrid import WeightedHybrid, normalise
from recframe.model.knn.sknn import SKNN
from recframe.model.knn.vsknn import VSKNN
from recframe.model.pop import PopModel
from tests.helpers.toy import markov_events


@pytest.fixture(scope="module")
def split():
    events = markov_events(n_sessions=240, n_items=30, seed=3)
    cut = events["session_id"].isin(events["session_id"].unique()[:200])
    return events[cut].reset_index(drop=True), events[~cut].reset_index(drop=True)


def test_normalisations() -> None:
    s = np.array([[1.0, 3.0, 2.0], [5.0, 5.0, 5.0], [0.0, -np.inf, 2.0]], dtype=np.float32)
    assert np.allclose(normalise(s, "minmax")[0], [0.0, 1.0, 0.5])
    assert np.allclose(normalise(s, "minmax")[1], 0.0)  # a constant row carries no preference
    assert np.allclose(normalise(s, "max")[0], [1 / 3, 1.0, 2 / 3])
    soft = normalise(s, "softmax")
    assert np.allclose(soft[0].sum(), 1.0) and soft[2, 1] == 0.0  # -inf gets no mass
    assert np.array_equal(normalise(s, "none"), s)


def test_blend_is_the_weighted_sum_and_round_trips(split, tmp_path: Path) -> None:
    train, test = split
    hybrid = WeightedHybrid(
        {"vsknn": VSKNN(k=20, sample_size=50), "pop": PopModel()},
        weights={"vsknn": 0.8, "pop": 0.2},
        normalize={"vsknn": "max", "pop": "minmax"},
    ).fit(train, None, FitContext(work_dir=tmp_path / "fit"))
    sessions = [np.array([0, 3]), np.array([5]), np.array([], dtype=np.int64)]
    expected = 0.8 * normalise(hybrid.members["vsknn"].score_next(sessions), "max") + 0.2 * normalise(
        hybrid.members["pop"].score_next(sessions), "minmax"
    )
    assert np.allclose(hybrid.score_next(sessions), expected)
    loaded = Model.load(hybrid.save(tmp_path / "artifact"))
    assert isinstance(loaded, WeightedHybrid) and list(loaded.members) == ["vsknn", "pop"]
    assert np.array_equal(loaded.score_next(sessions), hybrid.score_next(sessions))
    assert evaluate(loaded, test)["mrr@20"] == evaluate(hybrid, test)["mrr@20"]


def test_a_zero_weight_member_changes_nothing(split) -> None:
    train, test = split
    alone = SKNN(k=20, sample_size=50).fit(train)
    hybrid = WeightedHybrid({"sknn": SKNN(k=20, sample_size=50), "pop": PopModel()}, {"sknn": 1.0, "pop": 0.0}, "max")
    hybrid.fit(train)
    assert evaluate(hybrid, test)["hr@20"] == evaluate(alone, test)["hr@20"]


@pytest.mark.parametrize(
    ("weights", "normalize", "needle"),
    [
        ({"sknn": 1.0}, "max", "one weight per member"),
        ({"sknn": 1.0, "pop": -1.0}, "max", "model.weights.pop"),
        ({"sknn": 0.0, "pop": 0.0}, "max", "at least one positive"),
        ({"sknn": 1.0, "pop": 1.0}, "zscore", "model.normalize.sknn"),
    ],
)
def test_bad_configs_are_config_errors(weights, normalize, needle) -> None:
    with pytest.raises(ConfigError, match=needle):
        WeightedHybrid({"sknn": SKNN(), "pop": PopModel()}, weights, normalize)


def test_hydra_composes_members_from_model_configs(compose_config) -> None:
    cfg = compose_config("model=hybrid", "model.members.stan.k=50")
    model = instantiate_group("model", cfg.model)
    assert isinstance(model, WeightedHybrid)
    assert model.members["stan"].k == 50 and type(model.members["gru"]).__name__ == "GRU4RecModel"


class _SeedRecorder(PopModel):
    """Popularity, remembering the seed its fit was given."""

    def fit(self, train, valid=None, ctx=None):
        self.seen_seed = (ctx or FitContext()).seed
        return super().fit(train, valid, ctx)


def test_member_seeds_override_the_run_seed_and_round_trip(split, tmp_path: Path) -> None:
    train, _ = split
    hybrid = WeightedHybrid({"a": _SeedRecorder(), "b": _SeedRecorder()}, seeds={"b": 7})
    hybrid.fit(train, None, FitContext(seed=42))
    assert hybrid.members["a"].seen_seed == 42 and hybrid.members["b"].seen_seed == 7
    loaded = Model.load(hybrid.save(tmp_path / "artifact"))
    assert loaded.seeds == {"b": 7}
    with pytest.raises(ConfigError, match="model.seeds"):
        WeightedHybrid({"a": PopModel()}, seeds={"c": 1})
    with pytest.raises(ConfigError, match="model.seeds.a"):
        WeightedHybrid({"a": PopModel()}, seeds={"a": -1})


def test_seed_ensemble_preset_composes_two_gru_members_with_their_own_seeds(compose_config) -> None:
    model = instantiate_group("model", compose_config("experiment=hybrid_ensemble_diginetica").model)
    gru, gru2 = model.members["gru"], model.members["gru2"]
    assert gru is not gru2 and gru.hyperparameters() == gru2.hyperparameters()
    assert model.seeds == {"gru": 42, "gru2": 7} and model.weights == {"stan": 0.5, "gru": 0.25, "gru2": 0.25}


@pytest.mark.parametrize(
    "cpu, full, path",
    [
        ("gru4rec_diginetica_cpu", "gru4rec_diginetica", "model"),
        ("hybrid_diginetica_cpu", "hybrid_diginetica", "model.members.gru"),
    ],
)
def test_cpu_presets_change_only_the_size_of_the_published_gru(cpu: str, full: str, path: str, compose_config) -> None:
    """The laptop presets are the published Diginetica parameters with a smaller layer, sample and
    more events per step; everything else (loss, dropout, learning rate, epochs...) is inherited."""
    from omegaconf import OmegaConf

    small = OmegaConf.to_container(compose_config(f"experiment={cpu}"))
    big = OmegaConf.to_container(compose_config(f"experiment={full}"))
    gru_small, gru_big = small, big
    for key in path.split("."):
        gru_small, gru_big = gru_small[key], gru_big[key]
    changed = {k: (gru_big[k], v) for k, v in gru_small.items() if gru_big.get(k) != v}
    assert changed == {"layers": ([512], [256]), "batch_size": (128, 256), "n_sample": (2048, 1024)}
    assert small["trainer"] == big["trainer"] and small["trainer"]["max_epochs"] == 10


def test_prefix_scoring_matches_prefix_by_prefix(split) -> None:
    """The grouped one-pass path gives the same rows as expanding every prefix through score_next."""
    from recframe.model.seq.gru import GRU4RecModel

    train, test = split
    hybrid = WeightedHybrid(
        {"vsknn": VSKNN(k=20, sample_size=50), "gru": GRU4RecModel(layers=[16], n_sample=16, batch_size=8)},
        {"vsknn": 0.3, "gru": 0.7},
        {"vsknn": "max", "gru": "softmax"},
    ).fit(train, None, FitContext(trainer={"max_epochs": 1, "enable_progress_bar": False}, progress=False))
    sessions = [np.array([1, 2, 3]), np.array([4]), np.array([5, 6]), np.array([7, 8, 9, 10])]
    fast = list(hybrid.score_prefixes(sessions, batch_size=3))
    slow = list(Model.score_prefixes(hybrid, sessions, batch_size=3))
    fs, ft = np.concatenate([s for s, _ in fast]), np.concatenate([t for _, t in fast])
    ss, st = np.concatenate([s for s, _ in slow]), np.concatenate([t for _, t in slow])
    assert np.array_equal(ft, st) and len(ft) == 2 + 1 + 3
    assert np.allclose(fs, ss, atol=1e-5)
