"""Robustness of the HTTP surface: >= 1,000 malformed or odd requests, then sustained concurrent load.

Every answer must be a 4xx with a JSON ``{"error": ...}`` or, for valid-but-odd input, a 200 in the
contract's shape; never a 5xx, and the server must still answer ``/ping`` afterwards.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

ODD_STRINGS = [
    "",
    " ",
    "\u0000",
    "\u200b",
    "\u202e\u0627\u0644\u0639\u0631\u0628\u064a\u0629",
    "\U0001f600\U0001f469\u200d\U0001f4bb",
    "e\u0301",
    "\ufeff",
    "\uffff",
    "\U0010ffff",
    "sku1\n",
    "../../etc/passwd",
    "'; drop table items; --",
    "<script>alert(1)</script>",
    "%s%n%x",
    "\\",
    '"',
    "sku1",
    "sku2",
]
ODD_VALUES = [None, True, False, 0, -1, 1.5, 1e308, -0.0, "", "10", [], {}, [[]], {"a": 1}, [None], 10**18]


def _json(obj) -> bytes:
    return json.dumps(obj).encode()


def cases(rng: random.Random) -> Iterator[tuple[str, bytes]]:
    """(label, body) pairs: invalid JSON, wrong types, bad k, odd unicode, huge inputs, odd-but-valid."""
    valid = json.dumps({"session": ["sku1", "sku2"], "k": 5}).encode()
    # invalid JSON: truncations of a valid body, random bytes, random printable junk
    for i in range(1, len(valid)):
        yield "truncated", valid[:i]
    for _ in range(300):
        yield "random-bytes", bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64)))
    for _ in range(400):
        mutated = bytearray(valid)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(mutated))
            op = rng.random()
            if op < 0.4:
                mutated[pos] = rng.getrandbits(8)
            elif op < 0.7:
                del mutated[pos]
            else:
                mutated.insert(pos, rng.choice(b'{}[]",:0-9\\ \x00\xff'))
        yield "mutated", bytes(mutated)
    for _ in range(200):
        yield (
            "random-text",
            "".join(rng.choice('{}[]":,0123456789.eE+-tfnul "\\') for _ in range(rng.randint(1, 40))).encode(),
        )
    for raw in [
        b"",
        b" ",
        b"\n",
        b"\xef\xbb\xbf{}",
        b"\x00",
        b"NaN",
        b"Infinity",
        b'{"session": [NaN]}',
        b"{'session': []}",
    ]:
        yield "invalid-json", raw
    yield "deep-nesting", b"[" * 100_000 + b"]" * 100_000
    yield "deep-object", b'{"a":' * 10_000 + b"1" + b"}" * 10_000
    # wrong types for every field
    for field in ("session", "sessions", "k", "exclude_seen"):
        for value in ODD_VALUES:
            body = {"session": ["sku1"]}
            body[field] = value
            yield f"type-{field}", _json(body)
    for value in ODD_VALUES:
        yield "type-body", _json(value)
        yield "type-sku", _json({"session": ["sku1", value]})
        yield "type-batch-entry", _json({"sessions": [["sku1"], value]})
    # k at and beyond its bounds
    for k in [0, -1, -(10**9), 10**9, 10**30, 1001, 1000, 1, 2**63, 2**64, 1e9, 0.5, "1e9"]:
        yield "k", _json({"session": ["sku1"], "k": k})
    # odd unicode SKUs, keys and raw encodings
    for _ in range(300):
        session = [
            rng.choice(ODD_STRINGS) + chr(rng.randint(0x20, 0x10FFFF) & ~0x800) for _ in range(rng.randint(0, 6))
        ]
        yield (
            "unicode",
            json.dumps({"session": session, "k": rng.randint(1, 30)}, ensure_ascii=rng.random() < 0.5).encode(),
        )
    for raw in [
        b'{"session": ["\\ud800"]}',
        b'{"session": ["\\udfff\\ud800"]}',
        b'{"session": ["\xff\xfe"]}',
        b'{"session": ["\xc0\xaf"]}',
        b'{"session": ["\xed\xa0\x80"]}',
        b'{"\\ud83d": 1}',
        '{"séssion": ["sku1"]}'.encode(),
        '{"session": ["sku1"], "k": ５}'.encode(),
    ]:
        yield "raw-unicode", raw
    # unknown SKUs only (valid: popular items), empty sessions, duplicates, batches
    for n in (1, 5, 50):
        yield "unknown-only", _json({"session": [f"nope-{i}" for i in range(n)]})
    yield "empty-session", _json({"session": []})
    yield "duplicates", _json({"session": ["sku1"] * 30, "exclude_seen": False})
    yield "batch-odd", _json({"sessions": [[], ["nope"], ["sku1", 7]], "k": 3})
    # sizes: long sessions, many sessions, long SKUs, 100k items, bodies over the limit
    yield "session-100k", _json({"session": ["sku1"] * 100_000})
    yield "session-100k-ints", _json({"session": list(range(100_000))})
    yield "batch-2k", _json({"sessions": [["sku1"]] * 2000})
    yield "long-sku", _json({"session": ["x" * 100_000]})
    yield "body-10mb", _json({"session": ["x" * 1000] * 10_000})
    yield "body-10mb-junk", b"{" + b" " * (10 << 20) + b"}"


@pytest.fixture(scope="module")
def fuzz_endpoint(probe_artifact, tmp_path_factory):
    from recframe.deployer.local import LocalDeployer

    deployer = LocalDeployer()
    deployment = deployer.deploy(probe_artifact, tmp_path_factory.mktemp("fuzz"))
    yield deployment
    deployer.teardown()


def test_fuzz_only_4xx_json_and_no_5xx(fuzz_endpoint) -> None:
    rng = random.Random(1234)
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
