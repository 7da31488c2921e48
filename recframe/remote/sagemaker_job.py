"""``trainer=sagemaker``: the train step as a SageMaker training job.

The training image comes from the ``sagemaker`` SDK's image table
(:func:`recframe.sagemaker_images.pytorch_image_uri`, offline) and the inputs go to S3 through the
SDK's ``S3Uploader``. The job's life cycle (create, describe, stop) stays on boto3's ``sagemaker``
client: the request is the documented ``CreateTrainingJob`` request, checked field by field in
tests, and the failed and stopped states SageMaker reports, which moto never reaches, are played
with botocore's Stubber, which wraps a boto3 client (docs/howto_compute.md: which call uses what).

What the job gets (all under ``s3://BUCKET/PREFIX/JOB/``): the data step's splits (``data``
channel), ``job.json`` with the model class, its constructor arguments and the Lightning settings
(``config`` channel), and recframe's own source plus ``requirements.txt`` pinning the client's
torch, Lightning and data libraries (``code`` channel). The AWS PyTorch training container starts
with ``pip install -r requirements.txt`` and runs ``python -m recframe.remote.sagemaker_train``, so
the remote fit is the local fit. The artifact comes back from ``model.tar.gz``, is verified against
its checksums and only then renamed to ``<run>/model``.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from recframe.interfaces import ConfigError, Model, RecframeError

log = logging.getLogger("recframe")

PINNED = ("torch", "lightning", "numpy", "pandas", "pyarrow", "omegaconf", "hydra-core")
CODE_DIR = "/opt/ml/input/data/code"
CHECKPOINT_DIR = "/opt/ml/checkpoints"


class TrainingJobError(RecframeError):
    """The training job failed, was stopped, or its artifact did not verify: no ``model/`` is written."""


@dataclass
class SageMakerSettings:
    """``trainer.sagemaker`` (see conf/trainer/sagemaker.yaml)."""

    role_arn: str | None = None
    bucket: str | None = None
    region: str | None = None
    prefix: str = "recframe-training"
    instance_type: str = "ml.g5.xlarge"
    instance_count: int = 1
    volume_gb: int = 30
    spot: bool = False
    max_run_s: int = 4 * 3600
    max_wait_s: int | None = None
    checkpoint_s3_uri: str | None = None
    image_uri: str | None = None
    framework_version: str | None = None
    py_version: str | None = None
    poll_s: float = 15.0
    _image: str | None = field(default=None, init=False, repr=False)

    def check(self) -> None:
        """Fail before any upload when the role or the bucket is missing, in one line."""
        missing = [f"trainer.sagemaker.{k}" for k in ("role_arn", "bucket") if not getattr(self, k)]
        if missing:
            raise ConfigError.plain(
                f"trainer=sagemaker needs {' and '.join(missing)} (or SAGEMAKER_ROLE_ARN / RECFRAME_S3_BUCKET): "
                "set them, or train locally with trainer=cpu or trainer=gpu"
            )
        if self.spot and self.max_wait_s is not None and self.max_wait_s < self.max_run_s:
            raise ConfigError("trainer.sagemaker.max_wait_s", self.max_wait_s, f">= max_run_s ({self.max_run_s})")
        self.image()  # an unknown region, instance type or version fails here too, before any upload

    def image(self) -> str:
        """``image_uri``, or the AWS PyTorch training image the sagemaker SDK lists for the region
        (this one or boto3's default), the instance type (CPU or GPU build) and the version."""
        if self.image_uri:
            return self.image_uri
        if self._image is None:
            from recframe.sagemaker_images import pytorch_image_uri

            region = self.region or default_region()
            self._image = pytorch_image_uri(
                region, self.instance_type, "training", "trainer.sagemaker", self.framework_version, self.py_version
            )
        return self._image


def default_region() -> str | None:
    """The region boto3 would use (AWS_DEFAULT_REGION, the profile), or None."""
    try:
        import boto3
    except ImportError:
        return None
    return boto3.Session().region_name


def requirements() -> str:
    """Pins of the client's training libraries: the container installs exactly these at job start."""
    lines = []
    for name in PINNED:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        lines.append(f"{name}=={version.split('+')[0]}")  # a local build tag (+cpu) has no GPU twin
    return "\n".join(lines) + "\n"


def code_archive() -> bytes:
    """recframe's package source (Python files only) as a tar.gz."""
    import recframe

    pkg = Path(recframe.__file__).parent
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(pkg.rglob("*.py")):
            tar.add(path, arcname=str(Path("recframe") / path.relative_to(pkg)))
    return buf.getvalue()


def job_spec(model: Model, trainer: dict[str, Any], seed: int) -> dict[str, Any]:
    """``job.json``: the resolved model (class and constructor arguments) and the Lightning settings."""
    if not hasattr(model, "hyperparameters"):
        raise ConfigError.plain(
            f"trainer=sagemaker trains neural models (gru, lstm, sasrec); {model.name!r} fits in seconds "
            "where the data is: use trainer=cpu"
        )
    cls = type(model)
    lightning = {k: v for k, v in trainer.items() if k != "sagemaker"}
    return {
        "target": f"{cls.__module__}.{cls.__qualname__}",
        "hyperparameters": model.hyperparameters(),
        "name": model.name,
        "trainer": lightning,
        "seed": seed,
    }


def training_request(s: SageMakerSettings, job_name: str, s3_root: str, seed: int) -> dict[str, Any]:
    """The ``CreateTrainingJob`` request. Hyperparameters carry the seed only; no credentials anywhere."""
    command = (
        f"pip install --no-cache-dir -r {CODE_DIR}/requirements.txt && "
        f"tar -xzf {CODE_DIR}/code.tar.gz -C /tmp && cd /tmp && python -m recframe.remote.sagemaker_train"
    )

    def channel(name: str) -> dict[str, Any]:
        source = {"S3DataType": "S3Prefix", "S3Uri": f"{s3_root}/{name}/", "S3DataDistributionType": "FullyReplicated"}
        return {"ChannelName": name, "DataSource": {"S3DataSource": source}, "InputMode": "File"}

    stopping: dict[str, Any] = {"MaxRuntimeInSeconds": int(s.max_run_s)}
    request: dict[str, Any] = {
        "TrainingJobName": job_name,
        "RoleArn": s.role_arn,
        "AlgorithmSpecification": {
            "TrainingImage": s.image(),
            "TrainingInputMode": "File",
            "ContainerEntrypoint": ["/bin/sh", "-c"],
            "ContainerArguments": [command],
        },
        "HyperParameters": {"seed": str(seed)},
        "InputDataConfig": [channel("data"), channel("config"), channel("code")],
        "OutputDataConfig": {"S3OutputPath": f"{s3_root}/output/"},
        "ResourceConfig": {
            "InstanceType": s.instance_type,
            "InstanceCount": int(s.instance_count),
            "VolumeSizeInGB": int(s.volume_gb),
        },
        "StoppingCondition": stopping,
        "Environment": {"PYTHONUNBUFFERED": "1", "RECFRAME_CHECKPOINT_DIR": CHECKPOINT_DIR},
    }
    if s.spot:
        request["EnableManagedSpotTraining"] = True
        stopping["MaxWaitTimeInSeconds"] = int(s.max_wait_s or 2 * s.max_run_s)
    if s.checkpoint_s3_uri or s.spot:
        uri = s.checkpoint_s3_uri or f"{s3_root}/checkpoints/"
        request["CheckpointConfig"] = {"S3Uri": uri, "LocalPath": CHECKPOINT_DIR}
    return request


def split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


TERMINAL = ("Completed", "Failed", "Stopped")


class SageMakerTrainer:
    """Uploads the inputs, runs the job, streams its log, and brings ``model/`` back into the run."""

    def __init__(self, settings: dict[str, Any] | SageMakerSettings) -> None:
        self.s = settings if isinstance(settings, SageMakerSettings) else SageMakerSettings(**settings)

    def _client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, region_name=self.s.region)

    def train(self, model: Model, data_dir: Path, trainer: dict[str, Any], run_dir: Path, seed: int) -> Path:
        """Run the job to the end; return ``run_dir/model`` (written only after it verified)."""
        self.s.check()
        spec = job_spec(model, trainer, seed)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        job_name = f"recframe-{spec['name'] or 'model'}-{stamp}"[:63].replace("_", "-")
        s3_root = f"s3://{self.s.bucket}/{self.s.prefix}/{job_name}"
        s3, sm = self._client("s3"), self._client("sagemaker")
        self._upload(data_dir, spec, s3_root)
        sm.create_training_job(**training_request(self.s, job_name, s3_root, seed))
        log.info("training job %s started on %s", job_name, self.s.instance_type)
        desc = self.wait(sm, job_name)
        return self._fetch_model(s3, desc, run_dir)

    def _upload(self, data_dir: Path, spec: dict[str, Any], s3_root: str) -> None:
        """The three input channels, through the SDK's ``S3Uploader`` (a boto3 session underneath)."""
        import boto3
        from sagemaker.core.helper.session_helper import Session
        from sagemaker.core.s3 import S3Uploader

        session = Session(boto_session=boto3.Session(region_name=self.s.region))
        for path in sorted(p for p in Path(data_dir).iterdir() if p.is_file() and not p.name.endswith(".tmp")):
            S3Uploader.upload(str(path), f"{s3_root}/data", sagemaker_session=session)
        for uri, body in (
            (f"{s3_root}/config/job.json", json.dumps(spec).encode()),
            (f"{s3_root}/code/code.tar.gz", code_archive()),
            (f"{s3_root}/code/requirements.txt", requirements().encode()),
        ):
            S3Uploader.upload_bytes(body, uri, sagemaker_session=session)

    def wait(self, sm: Any, job_name: str) -> dict[str, Any]:
        """Poll until the job ends, printing its log; Ctrl-C stops the job. Raises unless Completed."""
        logs = LogTail(self._client("logs"), job_name)
        try:
            while True:
                desc = sm.describe_training_job(TrainingJobName=job_name)
                logs.drain()
                if desc["TrainingJobStatus"] in TERMINAL:
                    break
                time.sleep(self.s.poll_s)
        except KeyboardInterrupt:
            sm.stop_training_job(TrainingJobName=job_name)
            raise TrainingJobError(f"training job {job_name} stopped on Ctrl-C; no model was written") from None
        status = desc["TrainingJobStatus"]
        if status != "Completed":
            reason = str(desc.get("FailureReason") or "no reason given").splitlines()[0]
            raise TrainingJobError(f"training job {job_name} {status.lower()}: {reason}; no model was written")
        return desc

    def _fetch_model(self, s3: Any, desc: dict[str, Any], run_dir: Path) -> Path:
        from recframe.artifact import verify

        bucket, key = split_s3(desc["ModelArtifacts"]["S3ModelArtifacts"])
        target = Path(run_dir) / "model"
        tmp = Path(tempfile.mkdtemp(prefix="model.", dir=run_dir))
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
                tar.extractall(tmp, filter="data")
            verify(tmp)
        except Exception as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise TrainingJobError(f"the training job's model.tar.gz at s3://{bucket}/{key} is unusable: {e}") from None
        shutil.rmtree(target, ignore_errors=True)
        tmp.replace(target)
        return target


class LogTail:
    """Prints new CloudWatch lines of the job's log streams (``/aws/sagemaker/TrainingJobs``)."""

    GROUP = "/aws/sagemaker/TrainingJobs"

    def __init__(self, logs: Any, job_name: str) -> None:
        self.logs, self.job_name = logs, job_name
        self.tokens: dict[str, str | None] = {}

    def drain(self) -> int:
        """Print every line not printed yet; return how many. A log group not created yet is no error."""
        try:
            streams = self.logs.describe_log_streams(logGroupName=self.GROUP, logStreamNamePrefix=self.job_name)
        except Exception:  # noqa: BLE001 - the group appears once the instance starts
            return 0
        printed = 0
        for stream in streams.get("logStreams", []):
            name = stream["logStreamName"]
            kwargs: dict[str, Any] = {"logGroupName": self.GROUP, "logStreamName": name, "startFromHead": True}
            if self.tokens.get(name):
                kwargs["nextToken"] = self.tokens[name]
            page = self.logs.get_log_events(**kwargs)
            for event in page.get("events", []):
                print(f"[{self.job_name}] {event['message']}", flush=True)
                printed += 1
            self.tokens[name] = page.get("nextForwardToken")
        return printed
