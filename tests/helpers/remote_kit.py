"""Shared pieces of the remote-training tests: a small GRU4Rec from its composed config, a toy data set,
the trainer presets with the CPU accelerator, and an ``/opt/ml``-style container layout."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from recframe.app import compose, instantiate_group
from recframe.interfaces import Dataset, Model
from tests.helpers.toy import ToySource

ROOT = Path(__file__).resolve().parents[2]
SMALL_GRU = {"layers": [16], "batch_size": 8, "n_sample": 16, "steps_per_batch": 8, "eval_batch_size": 256}


@functools.cache
def _composed(*overrides: str) -> DictConfig:
    return compose(list(overrides))


def composed(*overrides: str) -> DictConfig:
    """The config ``python -m recframe OVERRIDES`` runs (composed once per process; a fresh copy each call)."""
    return copy.deepcopy(_composed(*overrides))


def small_gru(**overrides: Any) -> Model:
    """GRU4Rec from the composed ``model=gru`` (its ``_target_`` follows the module, wherever it lives)."""
    node = OmegaConf.merge(composed("model=gru").model, {**SMALL_GRU, **overrides})
    return instantiate_group("model", node)


SMALL_SASREC = {"hidden_size": 16, "n_layers": 1, "n_heads": 1, "max_len": 10, "batch_size": 32, "eval_batch_size": 256}


def small_sasrec(**overrides: Any) -> Model:
    """SASRec from the composed ``model=sasrec``: automatic optimisation, the model DDP suits."""
    node = OmegaConf.merge(composed("model=sasrec").model, {**SMALL_SASREC, **overrides})
    return instantiate_group("model", node)


def job_spec(model: Model, trainer: dict[str, Any], seed: int = 7) -> dict[str, Any]:
    """What the client puts in the config channel's ``job.json``."""
    cls = type(model)
    return {
        "target": f"{cls.__module__}.{cls.__qualname__}",
        "hyperparameters": model.hyperparameters(),
        "name": model.name,
        "trainer": trainer,
        "seed": seed,
    }


def toy_dataset(n_sessions: int = 120) -> Dataset:
    return ToySource(n_sessions=n_sessions).load(Path("."))


def trainer_preset(name: str, **overrides: Any) -> dict[str, Any]:
    """The composed ``trainer=NAME`` as the pipeline receives it, run on the CPU accelerator."""
    cfg = OmegaConf.to_container(composed(f"trainer={name}").trainer, resolve=True)
    cfg.pop("sagemaker", None)
    cfg.update({"accelerator": "cpu", "devices": 1, "max_epochs": 2, **overrides})
    return cfg


def checksums(model_dir: Path) -> dict[str, str]:
    return json.loads((model_dir / "checksums.json").read_text())["sha256"]


def file_digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def container_layout(root: Path, dataset: Dataset, job: dict[str, Any], seed: int) -> dict[str, str]:
    """Directories and environment as SageMaker sets them up in the training container."""
    ml = root / "opt" / "ml"
    data, config = ml / "input" / "data" / "data", ml / "input" / "data" / "config"
    input_config = ml / "input" / "config"
    for d in (data, config, input_config, ml / "model", ml / "output"):
        d.mkdir(parents=True, exist_ok=True)
    dataset.save(data)
    (config / "job.json").write_text(json.dumps(job))
    # SageMaker writes every hyperparameter value as a string
    (input_config / "hyperparameters.json").write_text(json.dumps({"seed": str(seed)}))
    # a fresh container: no torch.distributed variables left by an earlier in-process DDP fit
    dist = {"RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE"}
    return {
        **{k: v for k, v in os.environ.items() if k not in dist},
        "SM_CHANNEL_DATA": str(data),
        "SM_CHANNEL_CONFIG": str(config),
        "SM_MODEL_DIR": str(ml / "model"),
        "SM_INPUT_CONFIG_DIR": str(input_config),
        "SM_OUTPUT_DIR": str(ml / "output"),
        "SM_OUTPUT_DATA_DIR": str(ml / "output" / "data"),
        "SM_HPS": json.dumps({"seed": seed}),
        "RECFRAME_CHECKPOINT_DIR": str(root / "opt" / "ml" / "checkpoints"),
    }
