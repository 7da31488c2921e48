"""Robustness of the HTTP surface: >= 1,000 malformed or odd requests, then sustained concurrent load.

Every answer must be a 4xx with a JSON ``{"error": ...}`` or, for valid-but-odd input, a 200 in the
contract's shape; never a 5xx, and the server must still answer ``/ping`` afterwards.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections import Counter

import httpx
import pytest


@pytest.fixture(scope="module")
def fuzz_endpoint(probe_artifact, tmp_path_factory):
    from recframe.deployer.local import LocalDeployer

    deployer = LocalDeployer()
    deployment = deployer.deploy(probe_artifact, tmp_path_factory.mktemp("fuzz"))
    yield deployment
    deployer.teardown()


def test_fuzz_only_4xx_json_and_no_5xx(fuzz_endpoint, fuzz_corpus_module) -> None:
    rng = random.Random(1234)
    cases = fuzz_corpus_module.cases
    statuses: Counter[int] = Counter()
    by_label: dict[str, Counter[int]] = {}
    headers_variants = [
        {"Content-Type": "application/json"},
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/json; charset=latin-1"},
        {},
    ]
    n = 0
    with httpx.Client(base_url=fuzz_endpoint.url, trust_env=False, timeout=30) as client:
        for label, body in cases(rng):
            r = client.post("/invocations", content=body, headers=rng.choice(headers_variants))
            n += 1
            statuses[r.status_code] += 1
            by_label.setdefault(label, Counter())[r.status_code] += 1
            assert r.status_code < 500, (label, body[:200], r.text[:300])
            payload = r.json()
            if r.status_code == 200:
                assert "items" in payload or "results" in payload, (label, payload)
            else:
                assert 400 <= r.status_code < 500 and isinstance(payload["error"], str), (label, r.text[:300])
        # chunked bodies (no Content-Length) over the limit are refused too
        r = client.post("/invocations", content=iter([b'{"session": ["', b"x" * (2 << 20), b'"]}']))
        assert r.status_code == 413
        n += 1
        statuses[r.status_code] += 1
        assert client.get("/ping").status_code == 200
    rejected = sum(v for s, v in statuses.items() if 400 <= s < 500)
    assert rejected >= 1000 and statuses[200] > 0 and rejected + statuses[200] == n
    assert by_label["body-10mb"] == Counter({413: 1})
    assert set(by_label["session-100k"]) <= {413, 422}
    assert by_label["unknown-only"] == Counter({200: 3})
    assert set(by_label["k"]) <= {200, 400, 422}


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"POST /invocations HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        b"POST /invocations HTTP/1.1\r\nContent-Length: 10\r\n\r\n{}",
        b"POST /invocations HTTP/9.9\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello on a plain-HTTP port
    ],
)
def test_protocol_garbage_never_5xx(fuzz_endpoint, raw: bytes) -> None:
    port = fuzz_endpoint.details["port"]
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(raw)
        s.shutdown(socket.SHUT_WR)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    if data:
        assert not data.startswith(b"HTTP/1.1 5"), data[:200]
    assert httpx.get(f"{fuzz_endpoint.url}/ping", trust_env=False).status_code == 200


def _load(url: str, seconds: float, threads: int) -> tuple[int, Counter]:
    """Closed-loop clients, each on its own keep-alive connection, mixing single and batch requests."""
    stop = time.monotonic() + seconds
    outcomes: Counter = Counter()
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        local: Counter = Counter()
        with httpx.Client(base_url=url, trust_env=False, timeout=30) as client:
            while time.monotonic() < stop:
                session = [f"sku{rng.randint(0, 70)}" for _ in range(rng.randint(0, 20))]
                if rng.random() < 0.2:
                    body = {"sessions": [session, session[:3]], "k": 20}
                else:
                    body = {"session": session, "k": rng.randint(1, 20)}
                try:
                    r = client.post("/invocations", json=body)
                    ok = r.status_code == 200 and ("items" in r.json() or "results" in r.json())
                    local["ok" if ok else f"status-{r.status_code}"] += 1
                except httpx.HTTPError as e:
                    local[type(e).__name__] += 1
        with lock:
            outcomes.update(local)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(outcomes.values()), outcomes


def test_concurrent_load_short(fuzz_endpoint) -> None:
    total, outcomes = _load(fuzz_endpoint.url, seconds=4, threads=8)
    assert total > 50
    assert outcomes == Counter({"ok": total}), outcomes


@pytest.mark.slow
def test_concurrent_load_60s(fuzz_endpoint) -> None:
    total, outcomes = _load(fuzz_endpoint.url, seconds=60, threads=16)
    assert outcomes == Counter({"ok": total}), outcomes
    assert httpx.get(f"{fuzz_endpoint.url}/ping", trust_env=False).status_code == 200
