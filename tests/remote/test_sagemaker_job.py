"""``trainer=sagemaker`` without AWS: the real boto3 against moto (S3, SageMaker, CloudWatch Logs),
with the test playing SageMaker's part of running the container (the entry point as a subprocess
over the channels it downloads from S3), and botocore's Stubber for the job states moto cannot
reach (failed, stopped on Ctrl-C)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from recframe.interfaces import ConfigError, FitContext
from recframe.pipeline import Pipeline
from recframe.remote import sagemaker_job
from recframe.remote.sagemaker_job import SageMakerSettings, SageMakerTrainer, TrainingJobError, training_request
from tests.helpers.remote_kit import ROOT, checksums, small_gru, toy_dataset, trainer_preset
from tests.helpers.sagemaker_table import expected_uri
from tests.helpers.toy import ToySource

moto = pytest.importorskip("moto")

ROLE = "arn:aws:iam::123456789012:role/recframe-training"
SECRET = "wJalrXUtnFEMI-not-a-real-secret"


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with moto.mock_aws():
        boto3.client("s3").create_bucket(Bucket="models")
        yield boto3.client("s3")


def settings(**kw) -> dict:
    return {"role_arn": ROLE, "bucket": "models", "region": "us-east-1", "poll_s": 0, **kw}


def play_container(sm, s3, job_name: str, work: Path) -> None:
    """What SageMaker does with the request: channels to /opt/ml, run the command's module, upload the model."""
    desc = sm.describe_training_job(TrainingJobName=job_name)
    ml = work / "opt" / "ml"
    channels = {}
    for ch in desc["InputDataConfig"]:
        bucket, prefix = ch["DataSource"]["S3DataSource"]["S3Uri"].removeprefix("s3://").split("/", 1)
        dest = ml / "input" / "data" / ch["ChannelName"]
        dest.mkdir(parents=True)
        for obj in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]:
            s3.download_file(bucket, obj["Key"], str(dest / obj["Key"].rsplit("/", 1)[1]))
        channels[ch["ChannelName"]] = dest
    (ml / "input" / "config").mkdir(parents=True)
    (ml / "input" / "config" / "hyperparameters.json").write_text(json.dumps(desc["HyperParameters"]))
    code = work / "code"
    with tarfile.open(channels["code"] / "code.tar.gz") as tar:
        tar.extractall(code, filter="data")
    env = {
        "PATH": "/usr/bin:/bin",
        "SM_CHANNEL_DATA": str(channels["data"]),
        "SM_CHANNEL_CONFIG": str(channels["config"]),
        "SM_MODEL_DIR": str(ml / "model"),
        "SM_INPUT_CONFIG_DIR": str(ml / "input" / "config"),
        "RECFRAME_CHECKPOINT_DIR": str(ml / "checkpoints"),
        "PYTHONPATH": str(code),  # the shipped source, not the checkout
    }
    proc = subprocess.run(
        [sys.executable, "-m", "recframe.remote.sagemaker_train"], cwd=code, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for f in (ml / "model").iterdir():
            tar.add(f, arcname=f.name)
    bucket, key = desc["ModelArtifacts"]["S3ModelArtifacts"].removeprefix("s3://").split("/", 1)
    s3.put_object(Bucket=bucket, Key=key, Body=buf.getvalue())
    logs = boto3.client("logs")
    logs.create_log_group(logGroupName="/aws/sagemaker/TrainingJobs")
    logs.create_log_stream(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=f"{job_name}/algo-1")
    logs.put_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs",
        logStreamName=f"{job_name}/algo-1",
        logEvents=[{"timestamp": int(time.time() * 1000), "message": "epoch 2 done"}],
    )


def test_the_train_step_runs_as_a_job_and_brings_back_the_local_artifact(aws, tmp_path, monkeypatch, capsys):
    original_wait = SageMakerTrainer.wait
    jobs = []

    def wait_after_playing_the_container(self, sm, job_name):
        jobs.append(job_name)
        play_container(sm, aws, job_name, tmp_path / "container")
        return original_wait(self, sm, job_name)

    monkeypatch.setattr(SageMakerTrainer, "wait", wait_after_playing_the_container)
    trainer = {**trainer_preset("cpu"), "sagemaker": settings(spot=True, max_run_s=600)}
    model = small_gru()
    model.name = "gru"
    pipe = Pipeline(ToySource(n_sessions=120), model, None, None, tmp_path / "run", trainer=trainer,
                    steps=["data", "train"], seed=7, progress=False)  # fmt: skip
    pipe.run()

    local = small_gru()
    local.name = "gru"
    ds = toy_dataset()
    local.fit(ds.train, ds.valid, FitContext(trainer=trainer_preset("cpu"), work_dir=tmp_path / "lt", seed=7))
    local.save(tmp_path / "local_model")
    assert checksums(tmp_path / "run" / "model") == checksums(tmp_path / "local_model")
    assert f"[{jobs[0]}] epoch 2 done" in capsys.readouterr().out  # the job's log reached the console

    desc = boto3.client("sagemaker").describe_training_job(TrainingJobName=jobs[0])
    assert desc["AlgorithmSpecification"]["TrainingImage"] == expected_uri("us-east-1", "ml.g5.xlarge", "training")
    assert desc["ResourceConfig"]["InstanceType"] == "ml.g5.xlarge"
    assert [c["ChannelName"] for c in desc["InputDataConfig"]] == ["data", "config", "code"]
    assert desc["EnableManagedSpotTraining"] is True
    assert desc["StoppingCondition"] == {"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 1200}
    assert desc["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
    assert desc["HyperParameters"] == {"seed": "7"}
    assert SECRET not in json.dumps(desc, default=str) and "AKIAEXAMPLE" not in json.dumps(desc, default=str)
    assert not list((tmp_path / "run").glob("model.*"))  # no temp folder left beside model/


def test_the_request_names_the_checkpoint_uri_and_keeps_credentials_out(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    s = SageMakerSettings(**settings(checkpoint_s3_uri="s3://ckpt/run1/", instance_type="ml.g4dn.xlarge"))
    req = training_request(s, "job-1", "s3://models/p/job-1", seed=3)
    assert req["CheckpointConfig"] == {"S3Uri": "s3://ckpt/run1/", "LocalPath": "/opt/ml/checkpoints"}
    assert "EnableManagedSpotTraining" not in req and req["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge"
    assert "python -m recframe.remote.sagemaker_train" in req["AlgorithmSpecification"]["ContainerArguments"][0]
    text = json.dumps(req)
    assert SECRET not in text and "AWS_" not in text
    requirements = sagemaker_job.requirements()
    assert "torch==" in requirements and "lightning==" in requirements and "+cpu" not in requirements


@pytest.mark.parametrize("missing", ["role_arn", "bucket"])
def test_a_missing_role_or_bucket_fails_before_any_upload(aws, tmp_path, missing):
    ds = toy_dataset(40)
    ds.save(tmp_path / "data")
    with pytest.raises(ConfigError) as e:
        SageMakerTrainer(settings(**{missing: None})).train(small_gru(), tmp_path / "data", {}, tmp_path, 1)
    assert f"trainer.sagemaker.{missing}" in str(e.value) and "\n" not in str(e.value)
    assert aws.list_objects_v2(Bucket="models")["KeyCount"] == 0


def stubbed(statuses: list[dict]) -> tuple[object, Stubber]:
    sm = boto3.client("sagemaker")
    stub = Stubber(sm)
    for desc in statuses:
        stub.add_response("describe_training_job", desc, {"TrainingJobName": "job-1"})
    return sm, stub


def describe(status: str, **extra) -> dict:
    return {
        "TrainingJobName": "job-1", "TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/job-1",
        "ModelArtifacts": {"S3ModelArtifacts": "s3://models/x/model.tar.gz"}, "TrainingJobStatus": status,
        "SecondaryStatus": "Completed", "AlgorithmSpecification": {"TrainingInputMode": "File"},
        "ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {}, "CreationTime": "2026-01-01T00:00:00Z", **extra,
    }  # fmt: skip


def test_a_failed_job_gives_one_line(aws):
    sm, stub = stubbed([describe("InProgress"), describe("Failed", FailureReason="AlgorithmError: OOM\ntrace...")])
    with stub, pytest.raises(TrainingJobError) as e:
        SageMakerTrainer(settings()).wait(sm, "job-1")
    assert str(e.value) == "training job job-1 failed: AlgorithmError: OOM; no model was written"


def test_ctrl_c_stops_the_job(aws, monkeypatch):
    sm, stub = stubbed([describe("InProgress")])
    stub.add_response("stop_training_job", {}, {"TrainingJobName": "job-1"})

    def interrupt(_s):
        raise KeyboardInterrupt

    monkeypatch.setattr(sagemaker_job.time, "sleep", interrupt)
    with stub, pytest.raises(TrainingJobError, match="stopped on Ctrl-C"):
        SageMakerTrainer(settings(poll_s=1)).wait(sm, "job-1")
    stub.assert_no_pending_responses()


def test_a_tampered_model_tarball_leaves_no_model_folder(aws, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b'{"sha256": {}}'
        info = tarfile.TarInfo("checksums.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    aws.put_object(Bucket="models", Key="x/model.tar.gz", Body=buf.getvalue())
    with pytest.raises(TrainingJobError, match="unusable"):
        SageMakerTrainer(settings())._fetch_model(aws, describe("Completed"), tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert ROOT.exists()


def test_the_cli_without_role_or_bucket_stops_at_the_train_step_in_one_line(tmp_path):
    from tests.helpers.cli import fast_overrides, run_cli

    args = ["model=gru", "trainer=sagemaker", *fast_overrides(tmp_path / "data"), f"hydra.run.dir={tmp_path}/run"]
    proc = run_cli(args, tmp_path / "home", timeout=200, extra_env={"SAGEMAKER_ROLE_ARN": "", "RECFRAME_S3_BUCKET": ""})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "trainer.sagemaker.role_arn and trainer.sagemaker.bucket" in errors[0]
    assert not (tmp_path / "run" / "model").exists()
