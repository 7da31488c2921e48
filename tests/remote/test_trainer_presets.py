"""`trainer=gpu` and `trainer=ddp` exercised on the CPU accelerator, and the training entry point
run the way a SageMaker container runs it (``/opt/ml`` layout, ``SM_*`` variables, string
hyperparameters), including a two-process DDP fit over gloo."""

from __future__ import annotations

import ast
import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from recframe.artifact import load_model
from recframe.interfaces import FitContext
from recframe.model.seq.data import session_parallel_schedule, sessions_in_time_order
from recframe.model.seq.sharded import rank_schedule
from recframe.remote.sagemaker_train import hyperparameters, model_class
from recframe.vocab import ItemVocab
from tests.helpers.remote_kit import (
    ROOT,
    checksums,
    container_layout,
    job_spec,
    small_gru,
    small_sasrec,
    toy_dataset,
    trainer_preset,
)


@pytest.mark.parametrize("preset", ["gpu", "ddp"])
def test_gpu_presets_train_checkpoint_and_save_on_the_cpu_accelerator(preset, tmp_path):
    trainer = trainer_preset(preset)
    assert trainer["precision"] == "bf16-mixed" and trainer["enable_checkpointing"] is True
    ds = toy_dataset()
    model = small_gru()
    model.fit(ds.train, ds.valid, FitContext(trainer=trainer, work_dir=tmp_path / "train", seed=3, progress=False))

    ckpts = tmp_path / "train" / "checkpoints"
    assert (ckpts / "best.ckpt").exists() and (ckpts / "last.ckpt").exists()
    with (tmp_path / "train" / "metrics.csv").open() as f:
        epochs = {row["epoch"] for row in csv.DictReader(f)}
    assert len(epochs) == 2 and model.epochs_run == 2  # the epoch-metrics callback ran each epoch
    model.save(tmp_path / "model")
    weights = torch.load(tmp_path / "model" / "weights.pt", map_location="meta", weights_only=True)
    # bf16-mixed autocasts the maths; the stored weights stay float32, on no device but the CPU
    assert all(t.dtype == torch.float32 for t in weights.values() if t.is_floating_point())
    for path in (tmp_path / "model").iterdir():
        assert b"cuda" not in path.read_bytes(), path.name
    reloaded = load_model(tmp_path / "model")
    assert reloaded.device.type == "cpu"


def _cuda_literals(path: Path) -> list[str]:
    """Hard-coded CUDA devices: ``.cuda()`` calls, ``torch.device("cuda...")``, ``"cuda:N"`` defaults."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "cuda":
            found.append(f"{path.name}:{node.lineno} .cuda()")
        name = getattr(node.func, "attr", getattr(node.func, "id", "")) if isinstance(node, ast.Call) else ""
        if name == "device" and any(isinstance(a, ast.Constant) and str(a.value).startswith("cuda") for a in node.args):
            found.append(f"{path.name}:{node.lineno} device('cuda')")
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for d in [*node.args.defaults, *node.args.kw_defaults]:
                if isinstance(d, ast.Constant) and isinstance(d.value, str) and d.value.startswith("cuda"):
                    found.append(f"{path.name}:{node.lineno} default {d.value!r}")
    return found


def test_no_module_hard_codes_a_cuda_device():
    found = [hit for path in sorted((ROOT / "recframe").rglob("*.py")) for hit in _cuda_literals(path)]
    assert found == []
    probe = ROOT / "recframe" / "remote" / "sagemaker_train.py"
    assert _cuda_literals(probe) == []  # the scan runs on real files
    fake = Path(probe.parent / "__cuda_probe__.py")
    try:
        fake.write_text("def f(device='cuda:0'):\n    return x.cuda()\n")
        assert len(_cuda_literals(fake)) == 2  # and would catch both forms
    finally:
        fake.unlink()


def test_hyperparameters_arrive_as_strings_and_are_decoded(tmp_path):
    (tmp_path / "hyperparameters.json").write_text('{"seed": "7", "progress": "false", "tag": "run a"}')
    assert hyperparameters(tmp_path) == {"seed": 7, "progress": False, "tag": "run a"}
    assert hyperparameters(tmp_path / "missing") == {}
    with pytest.raises(Exception, match="not a recframe Model"):
        model_class("pathlib.Path")


def run_entry_point(env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recframe.remote.sagemaker_train", "--seed", env["SM_HPS"]],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_container_entry_point_writes_the_artifact_a_local_fit_writes(tmp_path):
    ds = toy_dataset()
    trainer = trainer_preset("cpu")
    local = small_gru()
    local.name = "gru"
    local.fit(ds.train, ds.valid, FitContext(trainer=trainer, work_dir=tmp_path / "local", seed=7, progress=False))
    local.save(tmp_path / "local_model")

    env = container_layout(tmp_path / "job", ds, job_spec(small_gru(), trainer), seed=7)
    proc = run_entry_point(env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    remote_model = Path(env["SM_MODEL_DIR"])
    assert checksums(remote_model) == checksums(tmp_path / "local_model")
    assert (Path(env["RECFRAME_CHECKPOINT_DIR"]) / "checkpoints" / "last.ckpt").exists()  # what spot resume reads

    env = container_layout(tmp_path / "other_seed", ds, job_spec(small_gru(), trainer), seed=8)
    assert run_entry_point(env).returncode == 0
    assert checksums(Path(env["SM_MODEL_DIR"]))["weights.pt"] != checksums(remote_model)["weights.pt"]


def test_a_job_with_a_bad_model_class_fails_in_one_line_and_writes_nothing(tmp_path):
    job = {**job_spec(small_gru(), trainer_preset("cpu")), "target": "os.path.join"}
    env = container_layout(tmp_path, toy_dataset(40), job, seed=1)
    proc = run_entry_point(env, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: job.json names 'os.path.join'")
    assert list(Path(env["SM_MODEL_DIR"]).iterdir()) == []
    assert "os.path.join" in (Path(env["SM_OUTPUT_DIR"]) / "failure").read_text()  # the job's FailureReason


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("build", [small_sasrec, small_gru], ids=["sasrec", "gru"])
def test_ddp_with_two_cpu_processes_trains_and_rank_zero_saves_one_artifact(tmp_path, build):
    # Lightning injects no sampler (recframe's loaders build their own batches); GRU4Rec splits its
    # sessions across the ranks itself, SASRec's ranks read every batch
    trainer = trainer_preset("ddp", devices=2)
    assert trainer["strategy"] == "ddp" and trainer["use_distributed_sampler"] is False
    ds = toy_dataset()
    env = container_layout(tmp_path, ds, job_spec(build(), trainer), seed=5)
    proc = run_entry_point(env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Starting with 2 processes" in proc.stderr + proc.stdout
    model_dir = Path(env["SM_MODEL_DIR"])
    assert sorted(p.name for p in model_dir.iterdir()) == ["checksums.json", "model.json", "vocab.json", "weights.pt"]
    assert proc.stderr.count("model artifact written to") == 1  # only rank 0 wrote it
    model = load_model(model_dir)
    assert model.epochs_run == 2
    if build is small_gru:  # rank 0 played its half of the sessions: fewer steps than one process takes
        sessions = sessions_in_time_order(ds.train, ItemVocab.from_events(ds.train))
        steps = model.fit_summary["train_steps_per_epoch"]
        assert steps == len(rank_schedule(sessions, 8, 0, 2)[0]) < 0.75 * len(session_parallel_schedule(sessions, 8)[0])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_cli_under_ddp_runs_the_pipeline_once_and_rank_one_only_joins_the_fit(tmp_path):
    from tests.helpers.cli import fast_overrides, run_cli

    run = tmp_path / "run"
    args = ["model=gru", "model.layers=[16]", "model.batch_size=8", "model.n_sample=16", "trainer=ddp",
            "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_epochs=2",
            *fast_overrides(tmp_path / "in"), f"hydra.run.dir={run}"]  # fmt: skip
    proc = run_cli(args, tmp_path / "home", timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Starting with 2 processes" in proc.stderr + proc.stdout
    out = proc.stdout + proc.stderr
    assert out.count("recframe run summary") == 1 and out.count("done test") == 1  # rank 1 stopped after the fit
    model = load_model(run / "model")  # verified against its checksums
    assert model.epochs_run == 2 and (run / "metrics.json").exists()
    assert not list(run.glob("model.*"))  # no second writer's temp folder
