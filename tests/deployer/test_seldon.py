"""``deployer=seldon``: a real ``mlserver start`` on 127.0.0.1 serving a real artifact over V2."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml

pytest.importorskip("mlserver")

from recframe.deployer.local import LocalDeployer  # noqa: E402
from recframe.deployer.seldon import SeldonDeployer  # noqa: E402
from recframe.interfaces import ConfigError  # noqa: E402


@pytest.fixture(scope="module")
def seldon(probe_artifact: Path, tmp_path_factory):
    deployer = SeldonDeployer(parallel_workers=0, smoke_k=5, storage_uri="s3://bucket/recframe/recframe")
    run_dir = tmp_path_factory.mktemp("seldon")
    deployment = deployer.deploy(probe_artifact, run_dir)
    yield deployer, deployment, run_dir
    deployer.teardown()
    deployer.teardown()


def test_mlserver_serves_and_smoke_passes(seldon) -> None:
    _, dep, run_dir = seldon
    assert dep.url.startswith("http://127.0.0.1:")
    assert dep.smoke["passed"], dep.smoke
    assert set(dep.smoke["checks"]) == {"single", "batch", "malformed", "v2_native"}
    settings = json.loads((run_dir / "seldon/models/settings.json").read_text())
    assert settings["host"] == "127.0.0.1" and settings["metrics_endpoint"] is None
    model_settings = json.loads((run_dir / "seldon/models/recframe/model-settings.json").read_text())
    assert model_settings["implementation"] == "recframe.deployer.mlserver_runtime.RecframeRuntime"
    assert model_settings["parallel_workers"] == 0


def test_same_items_as_local(seldon, probe_artifact: Path, tmp_path: Path) -> None:
    _, dep, _ = seldon
    session = ["sku2", "sku5", "unknown-sku", "sku1"]
    local = LocalDeployer()
    try:
        local_dep = local.deploy(probe_artifact, tmp_path)
        expected = httpx.post(f"{local_dep.url}/invocations", json={"session": session, "k": 8}, trust_env=False).json()
    finally:
        local.teardown()
    infer = f"{dep.url}/v2/models/recframe/infer"
    native = httpx.post(
        infer,
        json={
            "inputs": [
                {"name": "session", "shape": [len(session)], "datatype": "BYTES", "data": session},
                {"name": "k", "shape": [1], "datatype": "INT64", "data": [8]},
            ]
        },
        trust_env=False,
    )
    assert native.status_code == 200, native.text
    outputs = {o["name"]: o for o in native.json()["outputs"]}
    assert outputs["items"]["data"] == expected["items"]
    assert outputs["scores"]["datatype"] == "FP32"
    assert outputs["scores"]["data"] == pytest.approx(expected["scores"], rel=1e-5)
    assert outputs["unknown"]["data"] == [1]
    wrapped = httpx.post(
        infer,
        json={
            "inputs": [
                {
                    "name": "request",
                    "shape": [1],
                    "datatype": "BYTES",
                    "data": [json.dumps({"sessions": [session, []]})],
                }
            ]
        },
        trust_env=False,
    )
    results = json.loads(wrapped.json()["outputs"][0]["data"][0])["results"]
    assert results[0]["items"][:8] == expected["items"]


@pytest.mark.parametrize(
    "inputs",
    [
        [],
        [{"name": "session", "shape": [1], "datatype": "INT64", "data": [1.5]}],
        [{"name": "request", "shape": [1], "datatype": "BYTES", "data": ["{not json"]}],
        [{"name": "request", "shape": [1], "datatype": "BYTES", "data": ['{"session": ["a"], "k": 0}']}],
        [
            {"name": "session", "shape": [1], "datatype": "BYTES", "data": ["sku1"]},
            {"name": "k", "shape": [1], "datatype": "INT64", "data": [0]},
        ],
    ],
)
def test_bad_v2_requests_get_4xx_json(seldon, inputs) -> None:
    _, dep, _ = seldon
    r = httpx.post(f"{dep.url}/v2/models/recframe/infer", json={"inputs": inputs}, trust_env=False)
    assert 400 <= r.status_code < 500, r.text
    assert "error" in r.json()


def test_manifests_are_rendered(seldon) -> None:
    deployer, dep, run_dir = seldon
    docs = {p.name: yaml.safe_load(p.read_text()) for p in (run_dir / "seldon/manifests").glob("*.yaml")}
    assert docs["model.yaml"]["kind"] == "Model"
    assert docs["model.yaml"]["spec"]["storageUri"] == "s3://bucket/recframe/recframe"
    assert docs["server.yaml"]["kind"] == "Server"
    assert docs["server.yaml"]["spec"]["serverConfig"] == "mlserver"
    assert docs["seldondeployment-v1.yaml"]["kind"] == "SeldonDeployment"
    assert docs["seldondeployment-v1.yaml"]["spec"]["protocol"] == "v2"
    assert dep.details["applied_to"] is None  # no kube context: nothing applied


def test_bad_model_name() -> None:
    with pytest.raises(ConfigError, match="deployer.model_name"):
        SeldonDeployer(model_name="Bad_Name")


def _v2_cases() -> list[bytes]:
    import random

    rng = random.Random(0)
    valid = json.dumps({"inputs": [{"name": "session", "shape": [1], "datatype": "BYTES", "data": ["sku1"]}]})
    out = [valid[:i].encode() for i in range(1, len(valid))]
    out += [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 50))) for _ in range(100)]
    odd = [None, True, 0, -1, 1.5, "", [], {}, [[]], "x" * 10, [1, 2], {"a": 1}, 10**30]
    for field in ("name", "shape", "datatype", "data"):
        for value in odd:
            body = json.loads(valid)
            body["inputs"][0][field] = value
            out.append(json.dumps(body).encode())
    session = {"name": "session", "shape": [1], "datatype": "BYTES", "data": ["sku1"]}
    for value in odd:
        out.append(json.dumps({"inputs": value}).encode())
        out.append(json.dumps(value).encode())
        out.append(
            json.dumps({"inputs": [{"name": "request", "shape": [1], "datatype": "BYTES", "data": [value]}]}).encode()
        )
        for name, dtype in (("k", "INT64"), ("exclude_seen", "BOOL")):
            extra = {"name": name, "shape": [1], "datatype": dtype, "data": [value]}
            out.append(json.dumps({"inputs": [session, extra]}).encode())
    out.append(
        json.dumps(
            {"inputs": [{"name": "session", "shape": [3], "datatype": "FP32", "data": [1.0, 2.0, 3.0]}]}
        ).encode()
    )
    out.append(
        json.dumps(
            {"inputs": [{"name": "session", "shape": [2], "datatype": "BYTES", "data": [["a"], ["b"]]}]}
        ).encode()
    )
    out.append(json.dumps({"inputs": [{**session, "shape": [100000], "data": ["a"] * 100000}]}).encode())
    out.append(b'{"inputs":[{"name":"session","shape":[1],"datatype":"BYTES","data":["\\ud800"]}]}')
    return out


def test_v2_fuzz_never_5xx(seldon) -> None:
    _, dep, _ = seldon
    cases = _v2_cases()
    assert len(cases) >= 300
    with httpx.Client(trust_env=False, timeout=30) as client:
        for body in cases:
            r = client.post(
                f"{dep.url}/v2/models/recframe/infer", content=body, headers={"Content-Type": "application/json"}
            )
            assert r.status_code < 500, (body[:200], r.text[:300])
            if r.status_code >= 400:
                assert "error" in r.json() or "detail" in r.json(), r.text[:300]
        assert client.get(f"{dep.url}/v2/models/recframe/ready").status_code == 200


def test_kubectl_apply_only_with_a_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``kube_context`` the v2 manifests go to ``kubectl --context CTX apply`` (a stand-in kubectl
    here: tests never touch a cluster); without one, ``check`` needs no kubectl at all."""
    import os
    import stat

    from recframe.interfaces import RecframeError

    log = tmp_path / "kubectl.log"
    fake = tmp_path / "bin" / "kubectl"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    deployer = SeldonDeployer(kube_context="kind-test")
    manifests = deployer.render_manifests(tmp_path / "manifests")
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    deployer.check()
    assert deployer._apply(manifests) is True
    calls = log.read_text().splitlines()
    assert [c.split()[:3] for c in calls] == [["--context", "kind-test", "apply"]] * 2
    assert {Path(c.split()[-1]).name for c in calls} == {"server.yaml", "model.yaml"}
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(RecframeError, match="kubectl is not on PATH"):
        deployer.check()
    SeldonDeployer().check()  # no context: kubectl not needed


def test_a_merged_request_tensor_answers_each_client_as_if_alone(probe_artifact: Path) -> None:
    """Adaptive batching merges clients' ``request`` elements into one call: element i of the answer
    must be client i's own answer (bug caught: the merged sessions answered as one, or k mixed up)."""
    from recframe.deployer.mlserver_runtime import RecframeRuntime
    from recframe.deployer.predictor import Predictor

    runtime = RecframeRuntime.__new__(RecframeRuntime)  # no MLServer settings: only the predictor is used
    runtime.predictor = Predictor.from_artifact(probe_artifact)
    items = runtime.predictor.example_session(4)
    bodies = [
        {"session": items[:2], "k": 3},
        {"sessions": [[items[2]], items[1:4]], "k": 5},
        {"session": ["unknown-sku"], "k": 2, "exclude_seen": False},
    ]
    merged = runtime._answer_requests([json.dumps(b) for b in bodies])
    alone = [runtime.predictor.answer(b) for b in bodies]

    def results(answer: dict) -> list[dict]:
        return answer.get("results", [answer])

    for got, want in zip([json.loads(a) for a in merged], alone, strict=True):
        for g, w in zip(results(got), results(want), strict=True):
            assert g["items"] == w["items"] and g["unknown"] == w["unknown"]
            assert g["scores"] == pytest.approx(w["scores"], rel=1e-5)  # a bigger batch may round differently
    assert len(json.loads(merged[0])["items"]) == 3 and len(json.loads(merged[1])["results"]) == 2
