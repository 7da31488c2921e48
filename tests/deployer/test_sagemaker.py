"""``deployer=sagemaker``: ``code/inference.py`` in-process, and the deployer end to end with real boto3
against moto (S3 + SageMaker control plane + runtime).

moto 5.2.5 has no ``UpdateEndpoint`` and answers ``InvokeEndpoint`` with a canned body, so the
``moto_sagemaker`` fixture adds both, the way SageMaker behaves: ``update_endpoint`` switches the
endpoint to the new config, or (for an image whose name contains ``broken``) leaves the old config
serving with a ``FailureReason``; ``invoke_endpoint`` runs the real ``code/inference.py`` from the
``model.tar.gz`` the deployer uploaded to (moto's) S3, and turns its client errors into the
``ModelError`` SageMaker returns. An image containing ``badsmoke`` answers garbage.
"""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto")

from recframe.deployer import sagemaker as smd  # noqa: E402
from recframe.deployer.predictor import Predictor  # noqa: E402
from recframe.interfaces import ConfigError, RecframeError  # noqa: E402

pytestmark = pytest.mark.aws

ROLE = "arn:aws:iam::123456789012:role/recframe-sagemaker"
BUCKET = "recframe-test-bucket"
ROOT = Path(__file__).resolve().parents[2]


def _load_inference(code_dir: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, code_dir / "inference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _extract(tar_bytes: bytes, dest: Path) -> Path:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:gz") as tar:
        tar.extractall(dest, filter="data")
    return dest


# ------------------------------------------------------------------------------ inference.py


@pytest.fixture(scope="module")
def packaged(probe_artifact: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pkg")
    tar = smd.package_model(probe_artifact, out)
    return _extract(tar.read_bytes(), out / "model")


def test_model_tar_layout(packaged: Path) -> None:
    names = {p.relative_to(packaged).as_posix() for p in packaged.rglob("*") if p.is_file()}
    assert {"model.json", "vocab.json", "weights.pt", "checksums.json"} <= names
    assert {"code/inference.py", "code/requirements.txt", "code/recframe/__init__.py"} <= names
    assert {"code/recframe/deployer/predictor.py", "code/recframe/artifact.py", "code/recframe/vocab.py"} <= names
    assert "code/recframe/deployer/probe_model.py" in names  # the model class travels with it
    assert "code/recframe/app.py" not in names  # the Hydra app does not
    reqs = (packaged / "code/requirements.txt").read_text().split()
    assert any(r.startswith("pandas==") for r in reqs)
    assert not any(r.startswith(("torch", "numpy")) for r in reqs)  # the container provides them


def test_inference_handlers_in_process(packaged: Path, probe_artifact: Path) -> None:
    inf = _load_inference(packaged / "code", "recframe_inference_under_test")
    model = inf.model_fn(str(packaged))
    session = ["sku1", "sku2", "unknown"]
    data = inf.input_fn(json.dumps({"session": session, "k": 5}).encode(), "application/json; charset=utf-8")
    out = json.loads(inf.output_fn(inf.predict_fn(data, model), "application/json"))
    assert out == json.loads(json.dumps(Predictor.from_artifact(probe_artifact).predict(session, 5)))
    batch = inf.predict_fn(inf.input_fn('{"sessions": [["sku1"], []], "k": 2}', "application/json"), model)
    assert len(batch["results"]) == 2 and batch["results"][1]["unknown"] == 0

    for body, ctype, status in [
        (b"{", "application/json", 400),
        (b"", "application/json", 400),
        (b"a,b", "text/csv", 415),
        (b"x" * (2 << 20), "application/json", 413),
    ]:
        with pytest.raises(inf.RequestRejected) as e:
            inf.input_fn(body, ctype)
        assert e.value.status_code == status
        assert "error" in json.loads(e.value.message)
    for body in ({"session": "x"}, {"session": ["a"], "k": 0}, [], {"sessions": [[None]]}):
        with pytest.raises(inf.RequestRejected) as e:
            inf.predict_fn(body, model)
        assert e.value.status_code == 422
    with pytest.raises(inf.RequestRejected) as e:
        inf.output_fn({"items": []}, "text/csv")
    assert e.value.status_code == 406


def test_payload_is_self_contained(packaged: Path) -> None:
    """In a fresh interpreter the vendored recframe (not the repository's) serves the model."""
    script = f"""
import json, sys
sys.path.insert(0, {str(packaged / "code")!r})
import inference
import recframe
assert recframe.__file__.startswith({str(packaged)!r}), recframe.__file__
m = inference.model_fn({str(packaged)!r})
print(inference.output_fn(inference.predict_fn(inference.input_fn('{{"session": ["sku1"]}}', None), m), None).decode())
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=packaged)
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(json.loads(out.stdout.strip().splitlines()[-1])["items"]) == 10


def test_every_shipped_module_imports_from_the_payload_alone(packaged: Path) -> None:
    """The listed serving modules are closed under their imports: nothing outside ``code/`` is reached.

    recframe's own import hooks (an editable install) are removed first, so a module the payload
    lacks fails here instead of being found in the repository.
    """
    code = packaged / "code"
    modules = sorted(
        ".".join(p.relative_to(code).with_suffix("").parts).removesuffix(".__init__")
        for p in (code / "recframe").rglob("*.py")
    )
    assert "recframe.app" not in modules and "recframe.model.pop" in modules
    script = f"""
import importlib, sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path[:] = [p for p in sys.path if p not in ("", {str(ROOT)!r})]
sys.path.insert(0, {str(code)!r})
for name in {modules!r}:
    module = importlib.import_module(name)
    assert module.__file__.startswith({str(code)!r}), module.__file__
assert "hydra" not in sys.modules
print(len({modules!r}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180, cwd=packaged)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == str(len(modules))


def test_hybrid_payload_carries_every_member_class(events, tmp_path: Path) -> None:
    """A blended model loads its members by class name: their modules must travel in code/ too."""
    from recframe.model.hybrid import WeightedHybrid
    from recframe.model.knn.sknn import SKNN
    from recframe.model.pop import PopModel

    hybrid = WeightedHybrid({"sknn": SKNN(k=10, sample_size=20), "pop": PopModel()}, {"sknn": 0.7, "pop": 0.3})
    artifact = hybrid.fit(events).save(tmp_path / "hybrid")
    root = _extract(smd.package_model(artifact, tmp_path / "pkg").read_bytes(), tmp_path / "model")
    names = {p.relative_to(root).as_posix() for p in root.rglob("*.py")}
    assert {
        "code/recframe/model/hybrid.py",
        "code/recframe/model/knn/__init__.py",
        "code/recframe/model/knn/sknn.py",
        "code/recframe/model/pop.py",
    } <= names
    script = f"""
import sys
sys.path.insert(0, {str(root / "code")!r})
import inference
m = inference.model_fn({str(root)!r})
print(inference.output_fn(inference.predict_fn(inference.input_fn('{{"session": ["sku1"]}}', None), m), None).decode())
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=root)
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(json.loads(out.stdout.strip().splitlines()[-1])["items"]) == 10


# ----------------------------------------------------- settings (image URIs: tests/remote/test_sagemaker_images.py)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"role_arn": None}, "deployer.role_arn"),
        ({"bucket": None}, "deployer.bucket"),
        ({"region": None}, "deployer.region"),
        ({"role_arn": "admin"}, "arn:aws:iam"),
    ],
)
def test_missing_settings_fail_fast(kwargs, fragment: str) -> None:
    settings = {"region": "us-east-1", "role_arn": ROLE, "bucket": BUCKET, **kwargs}
    with pytest.raises(ConfigError, match=fragment) as e:
        smd.SageMakerDeployer(**settings).check()
    assert "\n" not in str(e.value)


def test_missing_credentials_fail_fast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(RecframeError, match="no AWS credentials"):
        smd.SageMakerDeployer(region="us-east-1", role_arn=ROLE, bucket=BUCKET).check()


def test_bad_endpoint_name() -> None:
    with pytest.raises(ConfigError, match="deployer.endpoint_name"):
        smd.SageMakerDeployer(endpoint_name="bad_name!")


# ------------------------------------------------------------------------------ moto end to end


@pytest.fixture
def moto_sagemaker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """moto with the two SageMaker behaviours it lacks (see the module docstring)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    import boto3
    from moto import mock_aws
    from moto.core.responses import ActionResult
    from moto.s3.models import s3_backends
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.models import SageMakerModelBackend, sagemaker_backends
    from moto.sagemaker.responses import SageMakerResponse
    from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

    def update_endpoint(self, endpoint_name: str, endpoint_config_name: str) -> str:
        if endpoint_name not in self.endpoints:
            raise ValidationError(message=f"Could not find endpoint '{endpoint_name}'.")
        config = self.describe_endpoint_config(endpoint_config_name)
        image = self.describe_model(config["ProductionVariants"][0]["ModelName"]).primary_container["Image"]
        endpoint = self.endpoints[endpoint_name]
        if "broken" in image:  # SageMaker rolls a failed update back: the old config keeps serving
            endpoint.failure_reason = "The primary container for production variant AllTraffic did not pass the ping"
        else:
            endpoint.endpoint_config_name = endpoint_config_name
            endpoint.production_variants = endpoint._process_production_variants(config["ProductionVariants"])
            endpoint.failure_reason = None
        endpoint.endpoint_status = "InService"
        return endpoint.arn

    def update_endpoint_response(self) -> ActionResult:
        arn = self.sagemaker_backend.update_endpoint(
            self._get_param("EndpointName"), self._get_param("EndpointConfigName")
        )
        return ActionResult({"EndpointArn": arn})

    containers: dict[str, object] = {}

    def invoke_endpoint(self):
        backend = sagemaker_backends[self.current_account][self.region]
        name = self._get_params().get("EndpointName") or self.path.split("/")[2]
        endpoint = backend.endpoints[name]
        config = backend.describe_endpoint_config(endpoint.endpoint_config_name)
        model = backend.describe_model(config["ProductionVariants"][0]["ModelName"]).primary_container
        if "badsmoke" in model["Image"]:
            return 200, {"Content-Type": "application/json"}, "not the contract"
        url = model["ModelDataUrl"]
        if url not in containers:  # "start the container": fetch and unpack model.tar.gz, model_fn
            bucket, key = url[len("s3://") :].split("/", 1)
            data = s3_backends[self.current_account]["global"].get_object(bucket, key).value
            root = _extract(data, tmp_path / f"container{len(containers)}")
            inf = _load_inference(root / "code", f"recframe_container_{len(containers)}")
            containers[url] = (inf, inf.model_fn(str(root)))
        inf, handle = containers[url]
        try:
            data = inf.input_fn(self.body, self.headers.get("Content-Type"))
            body = inf.output_fn(inf.predict_fn(data, handle), self.headers.get("Accept"))
        except inf.RequestRejected as e:
            error = {
                "ErrorCode": "CLIENT_ERROR_FROM_MODEL",
                "OriginalStatusCode": e.status_code,
                "OriginalMessage": e.message + "\nTraceback (most recent call last): ...",
                "message": f"Received client error ({e.status_code}) from primary",
            }
            headers = {"status": 424, "x-amzn-ErrorType": "ModelError", "Content-Type": "application/json"}
            return 424, headers, json.dumps(error)
        return 200, {"Content-Type": "application/json"}, body

    monkeypatch.setattr(SageMakerModelBackend, "update_endpoint", update_endpoint, raising=False)
    monkeypatch.setattr(SageMakerResponse, "update_endpoint", update_endpoint_response, raising=False)
    monkeypatch.setattr(SageMakerRuntimeResponse, "invoke_endpoint", invoke_endpoint)
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield boto3.client("sagemaker", region_name="us-east-1")


def _deployer(**kw) -> smd.SageMakerDeployer:
    settings = {"region": "us-east-1", "role_arn": ROLE, "bucket": BUCKET, "poll_s": 0.01, "smoke_k": 5}
    return smd.SageMakerDeployer(**{**settings, **kw})


def test_deploy_update_and_delete(moto_sagemaker, probe_artifact: Path, pop_artifact: Path, tmp_path: Path) -> None:
    sm = moto_sagemaker
    # 1. create
    first = _deployer().deploy(probe_artifact, tmp_path / "run1")
    assert first.smoke["passed"], first.smoke
    assert first.details["action"] == "created"
    assert first.url.endswith("/endpoints/recframe-endpoint/invocations")
    desc = sm.describe_endpoint(EndpointName="recframe-endpoint")
    assert desc["EndpointStatus"] == "InService"
    assert desc["EndpointConfigName"] == first.details["endpoint_config"]
    model = sm.describe_model(ModelName=first.details["model_name"])
    assert model["PrimaryContainer"]["Image"].endswith("pytorch-inference:2.6.0-cpu-py312")
    assert model["PrimaryContainer"]["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert (
        sm.describe_endpoint_config(EndpointConfigName=first.details["endpoint_config"])["ProductionVariants"][0][
            "InstanceType"
        ]
        == "ml.m5.large"
    )
    # the smoke test really went through inference.py: a 4xx came back for the malformed request
    assert first.smoke["checks"]["malformed"]["status"] == 422

    # 2. blue/green update to a new artifact; the old config and model are cleaned up afterwards
    second = _deployer().deploy(pop_artifact, tmp_path / "run2")
    assert second.smoke["passed"], second.smoke
    assert second.details["action"] == "updated"
    assert second.details["previous_config"] == first.details["endpoint_config"]
    assert (
        sm.describe_endpoint(EndpointName="recframe-endpoint")["EndpointConfigName"]
        == second.details["endpoint_config"]
    )
    configs = {c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]}
    assert configs == {second.details["endpoint_config"]}

    # 3. a failed update leaves the old config serving, and its new resources are removed
    with pytest.raises(smd.DeployError, match="still serves") as e:
        _deployer(image_uri="123.dkr.ecr.us-east-1.amazonaws.com/broken:1").deploy(probe_artifact, tmp_path / "run3")
    assert "\n" not in str(e.value)
    desc = sm.describe_endpoint(EndpointName="recframe-endpoint")
    assert desc["EndpointStatus"] == "InService"
    assert desc["EndpointConfigName"] == second.details["endpoint_config"]
    assert {c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]} == configs
    assert {m["ModelName"] for m in sm.list_models()["Models"]} == {second.details["model_name"]}

    # 4. an update that passes SageMaker's checks but fails the smoke test is rolled back
    with pytest.raises(smd.DeployError, match="rolled back"):
        _deployer(image_uri="123.dkr.ecr.us-east-1.amazonaws.com/badsmoke:1").deploy(probe_artifact, tmp_path / "run4")
    assert (
        sm.describe_endpoint(EndpointName="recframe-endpoint")["EndpointConfigName"]
        == second.details["endpoint_config"]
    )

    # 5. delete_after_test removes endpoint, config and model at teardown (idempotent)
    last = _deployer(delete_after_test=True)
    dep = last.deploy(probe_artifact, tmp_path / "run5")
    assert dep.smoke["passed"]
    last.teardown()
    last.teardown()
    assert sm.list_endpoints()["Endpoints"] == []
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []
    assert sm.list_models()["Models"] == []
    # the model.tar.gz is in S3 where the model pointed
    import boto3

    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert all(k.startswith("recframe/recframe-endpoint/") and k.endswith("/model.tar.gz") for k in keys)


def test_failed_create_is_cleaned_up(moto_sagemaker, probe_artifact: Path, tmp_path: Path) -> None:
    sm = moto_sagemaker
    deployer = _deployer(image_uri="123.dkr.ecr.us-east-1.amazonaws.com/badsmoke:1", endpoint_name="fresh")
    with pytest.raises(smd.DeployError, match="smoke test"):
        deployer.deploy(probe_artifact, tmp_path)
    assert sm.list_endpoints()["Endpoints"] == []
    assert sm.list_models()["Models"] == []


def test_without_delete_the_endpoint_outlives_teardown(moto_sagemaker, probe_artifact: Path, tmp_path: Path) -> None:
    deployer = _deployer(endpoint_name="kept")
    deployer.deploy(probe_artifact, tmp_path)
    deployer.teardown()
    assert moto_sagemaker.describe_endpoint(EndpointName="kept")["EndpointStatus"] == "InService"


def test_inference_handlers_fuzz(packaged: Path, fuzz_corpus) -> None:
    """The HTTP fuzz corpus through input_fn/predict_fn/output_fn: a 4xx RequestRejected or a contract answer."""
    inf = _load_inference(packaged / "code", "recframe_inference_fuzz")
    model = inf.model_fn(str(packaged))
    outcomes = {"ok": 0, "rejected": 0}
    for _, body in fuzz_corpus:
        try:
            answer = json.loads(inf.output_fn(inf.predict_fn(inf.input_fn(body, "application/json"), model), None))
            assert "items" in answer or "results" in answer
            outcomes["ok"] += 1
        except inf.RequestRejected as e:
            assert 400 <= e.status_code < 500 and "error" in json.loads(e.message)
            outcomes["rejected"] += 1
    assert outcomes["rejected"] >= 1000 and outcomes["ok"] > 0
