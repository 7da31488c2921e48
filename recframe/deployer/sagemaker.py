"""``deployer=sagemaker``: the artifact as a SageMaker real-time endpoint, created or updated blue/green.

Steps, each with plain boto3 clients (``s3``, ``sagemaker``, ``sagemaker-runtime``; why not the
SDK's resource classes: docs/deployment.md), the container image looked up through the
``sagemaker`` SDK (:mod:`recframe.sagemaker_images`):

1. ``check`` (before any training): region, role ARN, bucket and credentials are present, or one
   clear line says which setting is missing and how to set it.
2. Package ``model.tar.gz`` the way SageMaker's PyTorch inference toolkit expects: the artifact
   files at the root, ``code/inference.py`` (:mod:`recframe.deployer.sagemaker_inference`),
   ``code/requirements.txt`` and the recframe modules serving imports (``code/recframe/``, listed
   in :data:`SERVING_MODULES`), so the container needs nothing but the tarball.
3. Upload it to ``s3://BUCKET/PREFIX/ENDPOINT/STAMP/model.tar.gz``; create a model with the PyTorch
   inference image for the region and instance type
   (:func:`~recframe.sagemaker_images.pytorch_image_uri`) and an endpoint config.
4. No endpoint yet: create it. An endpoint already there: ``update_endpoint`` with a blue/green
   deployment policy; SageMaker provisions the new fleet, shifts traffic, and keeps the old
   config serving when the update fails.
5. Wait for ``InService``, smoke-test through ``invoke_endpoint``. When an update's smoke test fails
   the endpoint is rolled back to its previous config. New resources of a failed deployment are
   deleted; the previous model and config are deleted only after a successful update.
6. ``delete_after_test``: delete the endpoint, its config and model once the smoke test ran
   (``teardown`` does it, so it also happens after Ctrl-C with ``keep_alive``). Otherwise the
   endpoint keeps running, and billing, after the run.
"""

from __future__ import annotations

import io
import json
import logging
import re
import tarfile
import time
from pathlib import Path
from typing import Any

from recframe import validation as v
from recframe.deployer.smoke import example_session, failed_checks, run_smoke
from recframe.interfaces import ConfigError, Deployer, DeployError, Deployment, RecframeError

log = logging.getLogger(__name__)

ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
ENDPOINT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
JSON_TYPE = "application/json"
BUSY = ("Creating", "Updating", "SystemUpdating", "RollingBack")


# ------------------------------------------------------------------------------------ packaging

RECFRAME_DIR = Path(__file__).resolve().parents[1]
# What the container imports to serve, relative to the recframe package (RECFRAME_DIR). ``import recframe`` is light
# (its public names load on first use), so the real root package travels as it is. Listed by hand so
# the payload cannot grow by accident; tests/deployer/test_sagemaker.py imports each shipped module in
# a fresh interpreter that sees nothing else of recframe.
SERVING_MODULES = (
    "__init__.py",
    "interfaces.py",
    "artifact.py",
    "atomic.py",  # the artifact writer and the interfaces save through it
    "vocab.py",
    "events.py",  # vocab and evaluation read session codes through it
    "validation.py",
    "evaluation.py",  # the blended model scores its members with it
    "deployer/__init__.py",
    "deployer/predictor.py",
    "deployer/topk.py",
    "deployer/score_blocks.py",  # the predictor's batch path imports it
    "deployer/jsoncodec.py",
    "deployer/serving_process.py",  # inference.py sets the math threads through it
    "deployer/probe_model.py",  # a model class artifacts may name, like those under model/
    "timing_trials.py",  # the predictor and the item scorer pick their faster paths through it
)
# every model class, its networks and its helpers: an artifact names any of them
SERVING_PACKAGES = ("model",)
# the third-party distributions those modules import (torch and numpy come with the image: a
# different numpy than the one torch was built against breaks torch); pinned to the versions here
SERVING_REQUIREMENTS = ("pandas", "scipy", "lightning", "threadpoolctl")


def serving_files() -> list[Path]:
    """The recframe source files the payload carries, relative to the recframe package."""
    files = [Path(name) for name in SERVING_MODULES]
    for package in SERVING_PACKAGES:
        found = (RECFRAME_DIR / package).rglob("*.py")
        files += sorted(f.relative_to(RECFRAME_DIR) for f in found if "__pycache__" not in f.parts)
    return files


def serving_requirements() -> list[str]:
    """``requirements.txt`` lines: each serving requirement pinned to the installed version."""
    from importlib import metadata

    lines = []
    for dist in SERVING_REQUIREMENTS:
        try:
            lines.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            lines.append(dist)
    return lines


def package_model(artifact_dir: Path, out_dir: Path, extra_requirements: list[str] | None = None) -> Path:
    """Write ``model.tar.gz`` (artifact files at the root, ``code/`` beside them); return its path."""
    from recframe.artifact import verify

    verify(artifact_dir)  # never ship an artifact that would be refused at load time
    requirements = [*serving_requirements(), *(extra_requirements or [])]
    out_dir.mkdir(parents=True, exist_ok=True)
    tar_path = out_dir / "model.tar.gz"

    def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(tar_path, "w:gz") as tar:
        for f in sorted(Path(artifact_dir).iterdir()):
            if f.is_file():
                tar.add(f, arcname=f.name)
        add_bytes(tar, "code/inference.py", Path(__file__).with_name("sagemaker_inference.py").read_bytes())
        add_bytes(tar, "code/requirements.txt", ("\n".join(requirements) + "\n").encode())
        for rel in serving_files():
            add_bytes(tar, f"code/recframe/{rel.as_posix()}", (RECFRAME_DIR / rel).read_bytes())
    return tar_path


# ------------------------------------------------------------------------------------ deployer


class SageMakerDeployer(Deployer):
    """Create or blue/green-update a SageMaker real-time endpoint serving the artifact."""

    def __init__(
        self,
        region: str | None = None,
        role_arn: str | None = None,
        bucket: str | None = None,
        prefix: str = "recframe",
        endpoint_name: str = "recframe-endpoint",
        instance_type: str = "ml.m5.large",
        initial_instance_count: int = 1,
        framework_version: str | None = None,
        py_version: str | None = None,
        image_uri: str | None = None,
        extra_requirements: list[str] | tuple[str, ...] = (),
        delete_after_test: bool = False,
        keep_alive: bool = False,
        force: bool = False,
        smoke_k: int = 10,
        wait_timeout_s: float = 1800.0,
        poll_s: float = 15.0,
        endpoint_url: str | None = None,
    ) -> None:
        self.region = region or None
        self.role_arn = role_arn or None
        self.bucket = bucket or None
        self.prefix = str(prefix).strip("/")
        if not isinstance(endpoint_name, str) or not ENDPOINT_NAME.match(endpoint_name):
            raise ConfigError("deployer.endpoint_name", endpoint_name, "must be 1-63 letters, digits or hyphens")
        self.endpoint_name = endpoint_name
        if not isinstance(instance_type, str) or not instance_type.startswith("ml."):
            raise ConfigError("deployer.instance_type", instance_type, "must be a SageMaker type such as ml.m5.large")
        self.instance_type = instance_type
        self.initial_instance_count = v.integer("deployer.initial_instance_count", initial_instance_count, 1)
        self.framework_version = str(framework_version) if framework_version else None
        self.py_version = str(py_version) if py_version else None
        self.image_uri = image_uri or None
        self.extra_requirements = [str(r) for r in (extra_requirements or [])]
        self.delete_after_test = v.boolean("deployer.delete_after_test", delete_after_test)
        self.keep_alive = v.boolean("deployer.keep_alive", keep_alive)
        self.force = v.boolean("deployer.force", force)
        self.smoke_k = v.integer("deployer.smoke_k", smoke_k, 1)
        self.wait_timeout_s = v.positive("deployer.wait_timeout_s", wait_timeout_s)
        self.poll_s = v.positive("deployer.poll_s", poll_s)
        self.endpoint_url = endpoint_url or None  # e.g. a local SageMaker-compatible service
        self._deployed: dict[str, Any] | None = None
        self._image: str | None = None

    # ------------------------------------------------------------------ settings and clients

    def check(self) -> None:
        """Fail fast, before training, when a setting or the credentials are missing, or when no
        container image matches the region, instance type and version."""
        missing = []
        if not self.region:
            missing.append("deployer.region (or AWS_DEFAULT_REGION)")
        if not self.role_arn:
            missing.append("deployer.role_arn (or SAGEMAKER_ROLE_ARN)")
        if not self.bucket:
            missing.append("deployer.bucket (or RECFRAME_S3_BUCKET)")
        if missing:
            raise ConfigError("deployer", "sagemaker", f"missing {', '.join(missing)}")
        if not ROLE_ARN.match(self.role_arn):
            raise ConfigError("deployer.role_arn", self.role_arn, "must look like arn:aws:iam::123456789012:role/NAME")
        self.resolved_image_uri()
        try:
            import boto3
        except ImportError:
            raise RecframeError("deployer=sagemaker needs boto3: pip install 'recframe[aws]'") from None
        try:
            credentials = boto3.Session(region_name=self.region).get_credentials()
        except Exception as e:  # a broken profile or credential process: still one line
            raise RecframeError(f"deployer=sagemaker: cannot load AWS credentials: {e}") from None
        if credentials is None:
            raise RecframeError(
                "deployer=sagemaker: no AWS credentials found (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or run where an instance role is available)"
            )

    def _client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, region_name=self.region, endpoint_url=self.endpoint_url)

    def resolved_image_uri(self) -> str:
        """``deployer.image_uri``, or the AWS PyTorch inference image the sagemaker SDK lists for the
        region, instance type and version (see :mod:`recframe.sagemaker_images`)."""
        if self.image_uri:
            return self.image_uri
        from recframe.sagemaker_images import pytorch_image_uri

        if self._image is None:  # looked up once: check() and deploy() both need it
            self._image = pytorch_image_uri(
                self.region, self.instance_type, "inference", "deployer", self.framework_version, self.py_version
            )
        return self._image

    # ------------------------------------------------------------------ deploy

    def deploy(self, artifact_dir: Path, run_dir: Path) -> Deployment:
        """Package, upload, create or update the endpoint, wait, smoke-test."""
        from botocore.exceptions import ClientError

        self.check()
        artifact_dir, run_dir = Path(artifact_dir), Path(run_dir)
        sm, s3 = self._client("sagemaker"), self._client("s3")
        stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{int(time.time() * 1000) % 1000:03d}"
        name = f"{self.endpoint_name[: 63 - len(stamp) - 1]}-{stamp}"
        tar = package_model(artifact_dir, run_dir / "sagemaker", self.extra_requirements)
        key = f"{self.prefix}/{self.endpoint_name}/{stamp}/model.tar.gz".lstrip("/")
        model_data = f"s3://{self.bucket}/{key}"
        image = self.resolved_image_uri()
        log.info("uploading %s to %s", tar, model_data)
        try:
            s3.upload_file(str(tar), self.bucket, key)
            sm.create_model(
                ModelName=name,
                ExecutionRoleArn=self.role_arn,
                PrimaryContainer={
                    "Image": image,
                    "ModelDataUrl": model_data,
                    "Environment": {
                        "SAGEMAKER_PROGRAM": "inference.py",
                        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
                        "SAGEMAKER_REGION": self.region,
                        "RECFRAME_TORCH_THREADS": "1",
                    },
                },
            )
            sm.create_endpoint_config(
                EndpointConfigName=name,
                ProductionVariants=[
                    {
                        "VariantName": "AllTraffic",
                        "ModelName": name,
                        "InstanceType": self.instance_type,
                        "InitialInstanceCount": self.initial_instance_count,
                    }
                ],
            )
        except ClientError as e:
            self._delete_quietly(sm, model=name, config=name)
            raise DeployError(f"SageMaker refused the model or endpoint config: {_aws_message(e)}") from None
        previous = self._current_config(sm)
        if previous is None:
            action = "created"
            try:
                sm.create_endpoint(EndpointName=self.endpoint_name, EndpointConfigName=name)
            except ClientError as e:
                self._delete_quietly(sm, model=name, config=name)
                raise DeployError(f"create_endpoint {self.endpoint_name} failed: {_aws_message(e)}") from None
            status, reason, serving = self._wait(sm)
            if status != "InService":
                self._delete_quietly(sm, endpoint=self.endpoint_name, model=name, config=name)
                raise DeployError(f"endpoint {self.endpoint_name} ended {status}: {reason}; it was deleted")
        else:
            action = "updated"
            self._update(sm, name, previous)
        smoke = run_smoke(self._invoker(), example_session(artifact_dir), self.smoke_k)
        if not smoke["passed"]:
            if previous is not None:
                self._rollback(sm, name, previous, f"the smoke test failed ({failed_checks(smoke)})")
            self._delete_quietly(sm, endpoint=self.endpoint_name, model=name, config=name)
            raise DeployError(f"endpoint {self.endpoint_name} failed its smoke test ({failed_checks(smoke)}); deleted")
        if previous is not None:
            old_models = self._config_models(sm, previous)
            self._delete_quietly(sm, config=previous)
            for m in old_models:
                self._delete_quietly(sm, model=m)
        self._deployed = {"endpoint": self.endpoint_name, "config": name, "model": name}
        details = {
            "deployer": "sagemaker",
            "action": action,
            "region": self.region,
            "endpoint_name": self.endpoint_name,
            "endpoint_config": name,
            "model_name": name,
            "previous_config": previous,
            "model_data": model_data,
            "image_uri": image,
            "instance_type": self.instance_type,
            "delete_after_test": self.delete_after_test,
        }
        domain = "amazonaws.com.cn" if str(self.region).startswith("cn-") else "amazonaws.com"
        url = f"https://runtime.sagemaker.{self.region}.{domain}/endpoints/{self.endpoint_name}/invocations"
        return Deployment(url=url, smoke=smoke, details=details)

    def _current_config(self, sm: Any) -> str | None:
        from botocore.exceptions import ClientError

        try:
            desc = sm.describe_endpoint(EndpointName=self.endpoint_name)
        except ClientError as e:
            if "Could not find" in _aws_message(e) or e.response["Error"]["Code"] in ("ValidationException",):
                return None
            raise DeployError(f"describe_endpoint {self.endpoint_name} failed: {_aws_message(e)}") from None
        if desc["EndpointStatus"] in BUSY:
            raise DeployError(f"endpoint {self.endpoint_name} is {desc['EndpointStatus']}; try again when it is done")
        if desc["EndpointStatus"] == "Failed":
            raise DeployError(
                f"endpoint {self.endpoint_name} exists but is Failed ({desc.get('FailureReason', 'no reason')}); "
                "delete it or choose another deployer.endpoint_name"
            )
        return desc["EndpointConfigName"]

    def _update(self, sm: Any, new: str, previous: str) -> None:
        """Blue/green: SageMaker keeps the old fleet serving until the new one is healthy."""
        from botocore.exceptions import ClientError

        try:
            sm.update_endpoint(
                EndpointName=self.endpoint_name,
                EndpointConfigName=new,
                RetainAllVariantProperties=False,
                DeploymentConfig={
                    "BlueGreenUpdatePolicy": {
                        "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
                        "TerminationWaitInSeconds": 0,
                        "MaximumExecutionTimeoutInSeconds": int(min(max(self.wait_timeout_s, 600), 28800)),
                    }
                },
            )
        except ClientError as e:
            self._delete_quietly(sm, model=new, config=new)
            raise DeployError(
                f"update_endpoint {self.endpoint_name} failed: {_aws_message(e)}; still serving {previous}"
            ) from None
        status, reason, serving = self._wait(sm)
        if status != "InService" or serving != new:
            self._delete_quietly(sm, model=new, config=new)
            raise DeployError(
                f"update of endpoint {self.endpoint_name} to {new} failed ({reason or status}); "
                f"it still serves {serving}"
            )

    def _rollback(self, sm: Any, new: str, previous: str, why: str) -> None:
        from botocore.exceptions import ClientError

        log.warning("rolling endpoint %s back to %s: %s", self.endpoint_name, previous, why)
        try:
            sm.update_endpoint(EndpointName=self.endpoint_name, EndpointConfigName=previous)
            status, reason, serving = self._wait(sm)
        except ClientError as e:
            status, reason, serving = "Failed", _aws_message(e), new
        self._delete_quietly(sm, model=new, config=new)
        if serving != previous:
            raise DeployError(
                f"{why}, and rolling endpoint {self.endpoint_name} back to {previous} failed ({reason or status})"
            )
        raise DeployError(f"update of endpoint {self.endpoint_name} rolled back to {previous}: {why}")

    def _wait(self, sm: Any) -> tuple[str, str, str | None]:
        """Poll until the endpoint settles; return (status, failure reason, config it serves)."""
        deadline = time.monotonic() + self.wait_timeout_s
        while True:
            desc = sm.describe_endpoint(EndpointName=self.endpoint_name)
            status = desc["EndpointStatus"]
            if status not in BUSY:
                return status, desc.get("FailureReason", ""), desc.get("EndpointConfigName")
            if time.monotonic() > deadline:
                return status, f"still {status} after {self.wait_timeout_s:g} s", desc.get("EndpointConfigName")
            time.sleep(self.poll_s)

    def _config_models(self, sm: Any, config: str) -> list[str]:
        try:
            desc = sm.describe_endpoint_config(EndpointConfigName=config)
        except Exception:
            return []
        return [pv["ModelName"] for pv in desc.get("ProductionVariants", [])]

    def _invoker(self) -> Any:
        """``post`` for the smoke test: ``invoke_endpoint``, with a container 4xx (``ModelError``)
        mapped back to its original status and JSON body."""
        from botocore.exceptions import ClientError

        rt = self._client("sagemaker-runtime")

        def post(body: bytes) -> tuple[int, Any]:
            try:
                resp = rt.invoke_endpoint(
                    EndpointName=self.endpoint_name, Body=body, ContentType=JSON_TYPE, Accept=JSON_TYPE
                )
            except ClientError as e:
                err = e.response.get("Error", {})
                if err.get("Code") == "ModelError" or "OriginalStatusCode" in e.response:
                    status = int(e.response.get("OriginalStatusCode") or 0)
                    message = e.response.get("OriginalMessage") or err.get("Message", "")
                    return status, _first_json_line(message)
                return int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)), {"error": str(err)}
            raw = resp["Body"].read()
            try:
                return 200, json.loads(raw)
            except ValueError:
                return 200, raw.decode(errors="replace")

        return post

    # ------------------------------------------------------------------ wait and teardown

    def wait(self) -> None:
        """The endpoint runs in AWS: block until Ctrl-C, then let ``teardown`` decide what to delete."""
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            log.info("stopped waiting for endpoint %s", self.endpoint_name)

    def teardown(self) -> None:
        """With ``delete_after_test``, delete the endpoint, config and model; otherwise leave the
        endpoint serving (that is what deploying to SageMaker is for). Idempotent."""
        deployed, self._deployed = self._deployed, None
        if deployed is None or not self.delete_after_test:
            return
        sm = self._client("sagemaker")
        self._delete_quietly(sm, endpoint=deployed["endpoint"], config=deployed["config"], model=deployed["model"])

    @staticmethod
    def _delete_quietly(sm: Any, endpoint: str | None = None, config: str | None = None, model: str | None = None):
        """Best-effort cleanup: a resource already gone is fine, anything else is logged."""
        from botocore.exceptions import ClientError

        for call, kw in (
            (sm.delete_endpoint, {"EndpointName": endpoint}),
            (sm.delete_endpoint_config, {"EndpointConfigName": config}),
            (sm.delete_model, {"ModelName": model}),
        ):
            if next(iter(kw.values())) is None:
                continue
            try:
                call(**kw)
            except ClientError as e:
                if "Could not find" not in _aws_message(e):
                    log.warning("cleanup %s%s failed: %s", call.__name__, kw, _aws_message(e))


def _aws_message(e: Exception) -> str:
    err = getattr(e, "response", {}).get("Error", {})
    return f"{err.get('Code', type(e).__name__)}: {err.get('Message', str(e))}"


def _first_json_line(message: str) -> Any:
    """The toolkit's error body is our JSON line followed by a traceback: keep the JSON."""
    first = message.split("\n", 1)[0]
    try:
        return json.loads(first)
    except ValueError:
        return {"error": message[:500]}
