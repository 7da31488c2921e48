"""The training job's entry point: ``python -m recframe.remote.sagemaker_train`` inside the container.

It reads what SageMaker puts in the container and nothing else: the ``data`` channel (the data
step's splits as written by :meth:`Dataset.save`), the ``config`` channel (``job.json``: the model
class, its constructor arguments and the Lightning settings), the hyperparameters file (``seed``),
and writes the artifact to ``SM_MODEL_DIR``, which SageMaker uploads as ``model.tar.gz``.
Checkpoints go to ``/opt/ml/checkpoints``, the folder managed spot training syncs with
``checkpoint_s3_uri``: a restarted spot job finds ``last.ckpt`` there and the model's own resume
continues from it. Under DDP every rank trains; only rank 0 writes the artifact.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from recframe.ddp import is_rank_zero
from recframe.interfaces import Dataset, FitContext, Model, RecframeError

JOB_FILE = "job.json"
CHECKPOINT_DIR = "/opt/ml/checkpoints"


def hyperparameters(config_dir: Path) -> dict[str, Any]:
    """SageMaker's ``hyperparameters.json``: every value arrives as a string; JSON ones are decoded."""
    path = config_dir / "hyperparameters.json"
    raw = json.loads(path.read_text()) if path.exists() else {}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            out[key] = json.loads(value) if isinstance(value, str) else value
        except json.JSONDecodeError:
            out[key] = value
    return out


def model_class(target: str) -> type[Model]:
    """The class named in ``job.json``; only recframe Model subclasses are built."""
    module, _, name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise RecframeError(f"job.json names model class {target!r}, which cannot be imported: {e}") from None
    if not (isinstance(cls, type) and issubclass(cls, Model)):
        raise RecframeError(f"job.json names {target!r}, which is not a recframe Model")
    return cls


def train(
    data_dir: Path, config_dir: Path, model_dir: Path, input_config_dir: Path, checkpoint_dir: Path
) -> Path | None:
    """Fit the model described in ``config_dir/job.json`` on ``data_dir``; save it to ``model_dir``."""
    job = json.loads((config_dir / JOB_FILE).read_text())
    hp = hyperparameters(input_config_dir)
    model = model_class(job["target"])(**job["hyperparameters"])
    if job.get("name"):
        model.name = job["name"]
    ds = Dataset.load(data_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    ctx = FitContext(
        trainer=dict(job.get("trainer") or {}),
        work_dir=checkpoint_dir,
        seed=int(hp.get("seed", job.get("seed", 42))),
        progress=bool(hp.get("progress", False)),
    )
    model.fit(ds.train, ds.valid, ctx)
    if not is_rank_zero():
        return None
    return model.save(model_dir)


def main(argv: list[str] | None = None) -> int:
    """Run with SageMaker's environment; extra command-line arguments (``--seed 42``) are ignored,
    the hyperparameters file holds the same values."""
    env = os.environ
    try:
        saved = train(
            data_dir=Path(env.get("SM_CHANNEL_DATA", "/opt/ml/input/data/data")),
            config_dir=Path(env.get("SM_CHANNEL_CONFIG", "/opt/ml/input/data/config")),
            model_dir=Path(env.get("SM_MODEL_DIR", "/opt/ml/model")),
            input_config_dir=Path(env.get("SM_INPUT_CONFIG_DIR", "/opt/ml/input/config")),
            checkpoint_dir=Path(env.get("RECFRAME_CHECKPOINT_DIR", CHECKPOINT_DIR)),
        )
    except RecframeError as e:
        print(f"error: {e}", file=sys.stderr)
        # SageMaker shows this file's text as the job's FailureReason, which the client prints
        failure = Path(env.get("SM_OUTPUT_DIR", "/opt/ml/output")) / "failure"
        try:
            failure.parent.mkdir(parents=True, exist_ok=True)
            failure.write_text(str(e))
        except OSError:
            pass
        return 1
    if saved is not None:
        print(f"model artifact written to {saved}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
