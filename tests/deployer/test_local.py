"""``deployer=local``: a real uvicorn server on 127.0.0.1 serving a real artifact."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import httpx
import pytest

from recframe.app import instantiate_group
from recframe.deployer.local import LocalDeployer
from recframe.deployer.predictor import Predictor
from recframe.interfaces import ConfigError, DeployError


def test_deploy_smoke_and_contract(endpoint, probe_artifact: Path) -> None:
    assert endpoint.url.startswith("http://127.0.0.1:")
    assert endpoint.smoke["passed"], endpoint.smoke
    assert set(endpoint.smoke["checks"]) == {"single", "batch", "malformed"}
    predictor = Predictor.from_artifact(probe_artifact)
    with httpx.Client(base_url=endpoint.url, trust_env=False) as client:
        assert client.get("/ping").status_code == 200
        session = ["sku3", "sku1", "not-a-sku"]
        r = client.post("/invocations", json={"session": session, "k": 7})
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        body = r.json()
        expected = predictor.predict(session, k=7)
        assert body["items"] == expected["items"]
        assert body["unknown"] == 1
        r = client.post("/invocations", json={"sessions": [session, []], "k": 3, "exclude_seen": False})
        results = r.json()["results"]
        assert [res["items"] for res in results] == [
            predictor.predict(session, 3, False)["items"],
            predictor.predict([], 3)["items"],
        ]
        spec = client.get("/openapi.json").json()
        assert {"/ping", "/invocations"} <= set(spec["paths"])
        assert client.get("/docs").status_code == 200


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b"not json",
        b"[]",
        b"null",
        b'{"session": null}',
        b'{"session": "sku1"}',
        b'{"session": ["sku1"], "k": 0}',
        b'{"session": ["sku1"], "k": -1}',
        b'{"session": ["sku1"], "k": 1000000000}',
        b'{"session": ["sku1"], "k": "10"}',
        b'{"session": [{"a": 1}]}',
        b'{"session": ["\\ud800"]}',
        b"\xff\xfe\x00",
        b'{"session": ["sku1"], "extra": 1}',
        b"[" * 5000 + b"]" * 5000,
    ],
)
def test_malformed_requests_get_4xx_json(endpoint, content: bytes) -> None:
    r = httpx.post(f"{endpoint.url}/invocations", content=content, trust_env=False)
    assert 400 <= r.status_code < 500, r.text
    assert isinstance(r.json()["error"], str)


def test_body_over_limit_gets_413(endpoint) -> None:
    big = json.dumps({"session": ["x" * 100] * 20000}).encode()  # ~2 MB > 1 MB default
    r = httpx.post(f"{endpoint.url}/invocations", content=big, trust_env=False)
    assert r.status_code == 413
    assert "limit" in r.json()["error"]
    assert httpx.get(f"{endpoint.url}/ping", trust_env=False).status_code == 200


def test_unknown_routes_and_methods_are_json(endpoint) -> None:
    r = httpx.get(f"{endpoint.url}/nope", trust_env=False)
    assert r.status_code == 404 and "error" in r.json()
    r = httpx.get(f"{endpoint.url}/invocations", trust_env=False)
    assert r.status_code == 405 and "error" in r.json()


def test_teardown_is_idempotent_and_frees_the_port(probe_artifact: Path, tmp_path: Path) -> None:
    deployer = LocalDeployer()
    dep = deployer.deploy(probe_artifact, tmp_path)
    port = dep.details["port"]
    deployer.teardown()
    deployer.teardown()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{dep.url}/ping", trust_env=False, timeout=1)
    with socket.socket() as s:  # the port is free again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


def test_process_settings_hold_while_serving_and_teardown_undoes_them(probe_artifact: Path, tmp_path: Path) -> None:
    """A thread-mode endpoint tunes its process (math threads, switch interval, frozen heap) and
    hands it back as it was: a pipeline or test session goes on with its own settings."""
    import gc
    import sys

    import torch

    from recframe.deployer.serving_process import SWITCH_INTERVAL_S

    before = (torch.get_num_threads(), sys.getswitchinterval(), gc.get_freeze_count())
    deployer = LocalDeployer(torch_threads=1)
    deployer.deploy(probe_artifact, tmp_path)
    try:
        assert torch.get_num_threads() == 1
        assert sys.getswitchinterval() == SWITCH_INTERVAL_S and gc.get_freeze_count() > 0
    finally:
        deployer.teardown()
    assert (torch.get_num_threads(), sys.getswitchinterval()) == before[:2]
    assert (gc.get_freeze_count() == 0) == (before[2] == 0)  # an outer endpoint's frozen heap stays frozen


def test_wait_returns_when_the_server_stops(probe_artifact: Path, tmp_path: Path) -> None:
    """``keep_alive`` blocks in ``wait()`` while serving and returns once the server is torn down."""
    deployer = LocalDeployer(keep_alive=True)
    dep = deployer.deploy(probe_artifact, tmp_path)
    waiter = threading.Thread(target=deployer.wait, daemon=True)
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive(), "wait() returned while the endpoint was still serving"
    assert httpx.get(f"{dep.url}/ping", trust_env=False).status_code == 200
    deployer.teardown()
    waiter.join(30)  # a hang fails here instead of blocking the suite
    assert not waiter.is_alive(), "wait() did not return after teardown"
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{dep.url}/ping", trust_env=False, timeout=1)
    deployer.teardown()


def test_busy_port_is_a_clear_error(probe_artifact: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(DeployError, match="cannot listen on 127.0.0.1"):
            LocalDeployer(port=s.getsockname()[1]).deploy(probe_artifact, tmp_path)


@pytest.mark.slow
def test_multi_worker_subprocess(pop_artifact: Path, tmp_path: Path) -> None:
    deployer = LocalDeployer(workers=2)
    try:
        dep = deployer.deploy(pop_artifact, tmp_path)
        assert dep.smoke["passed"], dep.smoke
        assert httpx.post(f"{dep.url}/invocations", json={"session": []}, trust_env=False).status_code == 200
    finally:
        deployer.teardown()
        deployer.teardown()
    assert (tmp_path / "serve.log").exists()


def test_bad_settings_fail_fast() -> None:
    with pytest.raises(ConfigError, match="deployer.port"):
        LocalDeployer(port=70000)
    with pytest.raises(ConfigError, match="deployer.smoke_k"):
        LocalDeployer(smoke_k=0)


@pytest.mark.parametrize("name", ["local", "none", "sagemaker", "seldon"])
def test_no_deployer_keeps_serving_or_forces_by_default(name: str, compose_config) -> None:
    deployer = instantiate_group("deployer", compose_config(f"deployer={name}").deployer)
    assert deployer.keep_alive is False
    assert deployer.force is False


def test_none_deployer(tmp_path: Path, compose_config) -> None:
    deployer = instantiate_group("deployer", compose_config("deployer=none").deployer)
    dep = deployer.deploy(tmp_path, tmp_path)
    assert dep.smoke["passed"] and dep.smoke["skipped"]
    deployer.teardown()
    deployer.teardown()


def test_fastapi_path_gives_the_same_answers(endpoint, probe_artifact: Path, tmp_path: Path) -> None:
    deployer = LocalDeployer(fast_path=False)
    try:
        slow = deployer.deploy(probe_artifact, tmp_path)
        assert slow.smoke["passed"], slow.smoke
        for body in ({"session": ["sku1", "x"], "k": 4}, {"sessions": [["sku2"], []]}, {"session": "bad"}):
            a = httpx.post(f"{slow.url}/invocations", json=body, trust_env=False)
            b = httpx.post(f"{endpoint.url}/invocations", json=body, trust_env=False)
            assert (a.status_code, a.json()) == (b.status_code, b.json())
        assert httpx.post(f"{slow.url}/invocations", content=b"{", trust_env=False).status_code == 400
        big = b'{"session": ["' + b"x" * (2 << 20) + b'"]}'
        assert httpx.post(f"{slow.url}/invocations", content=big, trust_env=False).status_code == 413
    finally:
        deployer.teardown()


def test_big_batches_are_scored_in_slices(probe_artifact: Path) -> None:
    import asyncio

    from recframe.deployer.serving import create_app

    app = create_app(Predictor.from_artifact(probe_artifact), max_batch=7)
    body = json.dumps({"sessions": [["sku1"], ["sku2", "sku3"]] * 20, "k": 3}).encode()

    async def call() -> tuple[int, bytes]:
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict:
            return messages.pop(0)

        return await app.invocations(receive)

    status, raw = asyncio.run(call())
    assert status == 200
    results = json.loads(raw)["results"]
    assert len(results) == 40 and results[0] == results[2] and results[1] == results[3]
    assert app.batcher.sessions == 40
    app.close()


def test_smoke_does_not_depend_on_the_exclude_seen_default(probe_artifact: Path, tmp_path: Path) -> None:
    deployer = LocalDeployer(exclude_seen=False)
    try:
        dep = deployer.deploy(probe_artifact, tmp_path)
        assert dep.smoke["passed"], dep.smoke
        with pytest.raises(DeployError, match="already serving"):
            deployer.deploy(probe_artifact, tmp_path)
        session = dep.smoke["session"]
        r = httpx.post(f"{dep.url}/invocations", json={"session": session, "k": 100}, trust_env=False).json()
        assert set(session) <= set(r["items"])  # the configured default applies to requests
    finally:
        deployer.teardown()
