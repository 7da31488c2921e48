"""Every option of every config group composes and instantiates, presets and sweeps included.

Instantiating is what the CLI does before any step runs, so it must stay cheap: no connection
beyond loopback (a guard on ``socket.connect`` fails the test) and nothing written to recframe's
home (the warehouse is created by the data step, not by the constructor).
"""

from __future__ import annotations

import inspect
import socket
from importlib.resources import files

import pytest
from omegaconf import OmegaConf

from recframe.app import GROUPS, instantiate_parts
from recframe.interfaces import DataSource, Deployer, Model, Tester, Tracker
from recframe.shipped import CONFIG_MODULE

INTERFACES = {"datasource": DataSource, "model": Model, "tester": Tester, "deployer": Deployer, "tracker": Tracker}
# options that need an extra: skipped, with the reason, where it is not installed
NEEDS = {
    ("datasource", "snowflake"): "snowflake.connector",
    ("deployer", "sagemaker"): "boto3",
    ("deployer", "seldon"): "mlserver",
    ("tracker", "comet"): "comet_ml",
    ("tracker", "mlflow"): "mlflow",
    ("hparams_search", "*"): "hydra_plugins.hydra_optuna_sweeper",
}
# mandatory settings (``???``) of an option: placeholders, since a constructor reads no file
REQUIRED = {("datasource", "files"): ("datasource.train=train.tsv", "datasource.test=test.tsv")}
# trainer keys recframe reads itself (CPU tuning in recframe/model/seq/training.py, the SageMaker
# training job block of trainer=sagemaker); the rest go to lightning.Trainer
RECFRAME_TRAINER_KEYS = {"cpu_threads", "cpu_keep_memory", "sagemaker"}


def all_options() -> list[tuple[str, str]]:
    """(group, option) for each yaml file of each shipped config group (Hydra's own group aside)."""
    root = files(CONFIG_MODULE)
    groups = sorted(d.name for d in root.iterdir() if d.is_dir() and d.name not in ("hydra", "__pycache__"))
    return [(g, f.name.removesuffix(".yaml")) for g in groups for f in sorted(root.joinpath(g).iterdir(), key=str)
            if f.name.endswith(".yaml")]  # fmt: skip


def test_the_option_list_covers_the_groups_and_presets():
    options = set(all_options())
    for group in ("datasource", "model", "tester", "deployer", "tracker", "trainer", "experiment", "hparams_search"):
        assert any(g == group for g, _ in options), group
    for dataset in ("coveo", "rees46", "retailrocket", "yoochoose", "diginetica"):
        assert ("experiment", f"gru4rec_{dataset}") in options


@pytest.fixture
def no_outbound(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Refuse (and record) any connection that is not to loopback or a local socket."""
    attempts: list[object] = []
    connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and not str(host).startswith(("127.", "::1", "localhost")):
            attempts.append(address)
            raise OSError(f"test guard: outbound connection to {address!r}")
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    return attempts


@pytest.mark.parametrize(("group", "option"), all_options())
def test_every_option_composes_and_instantiates(group, option, compose_config, no_outbound, tmp_path, monkeypatch):
    module = NEEDS.get((group, option)) or NEEDS.get((group, "*"))
    if module:
        pytest.importorskip(module, reason=f"{group}={option} needs an extra")
    home = tmp_path / "home"
    monkeypatch.setenv("RECFRAME_HOME", str(home))
    cfg = compose_config(f"{group}={option}", *REQUIRED.get((group, option), ()))
    assert cfg.hydra.runtime.choices[group] == option

    parts = instantiate_parts(cfg)

    for name in GROUPS:
        node = cfg.get(name)
        if node is None:
            assert parts[name] is None, name
            continue
        part = parts[name]
        assert isinstance(part, INTERFACES[name]), (name, node._target_, type(part))
    assert no_outbound == []
    assert not home.exists() or not any(home.iterdir()), "instantiating wrote to recframe's home"

    if cfg.get("trainer") is not None:  # the trainer group is Lightning's keyword arguments
        import lightning

        accepted = set(inspect.signature(lightning.Trainer.__init__).parameters)
        unknown = set(cfg.trainer) - accepted - RECFRAME_TRAINER_KEYS
        assert not unknown, f"not lightning.Trainer arguments: {sorted(unknown)}"
    if group == "hparams_search":  # every searched key is a key of the composed config
        params = cfg.hydra.sweeper.params
        assert params and cfg.hydra.mode.name == "MULTIRUN"
        for key in params:
            assert OmegaConf.select(cfg, key, default="<missing>") != "<missing>", key
