"""Under concurrency, each micro-batched answer goes back to the request that asked for it.

A real server (``deployer=local``) on 127.0.0.1 serves a real artifact; client threads released
together send requests with distinct sessions, ``k`` and ``exclude_seen``, some with several sessions,
so the server's micro-batcher packs requests of different shapes into one scoring call. Every answer
must equal what the in-process predictor gives for that request's own sessions, and the answers
differ from request to request, so an answer delivered to the wrong request cannot go unnoticed.
"""

from __future__ import annotations

import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection
from pathlib import Path

import pytest

from recframe.deployer.local import LocalDeployer
from recframe.deployer.predictor import Predictor
from recframe.deployer.probe_model import ProbeGRUModel
from recframe.vocab import ItemVocab

N_ITEMS = 3000
CLIENTS = 24
REQUESTS_PER_CLIENT = 8


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A catalogue big enough that scoring takes a while, so requests queue up behind each other."""
    vocab = ItemVocab([f"sku{i}" for i in range(N_ITEMS)], list(range(N_ITEMS, 0, -1)))
    return ProbeGRUModel.with_vocab(vocab, dim=32, seed=3).save(tmp_path_factory.mktemp("art") / "probe")


def request_bodies(client: int) -> list[dict]:
    """Distinct requests per client: single sessions and batches of 2-3, with varied k and exclusion."""
    rng = random.Random(client)
    bodies = []
    for i in range(REQUESTS_PER_CLIENT):
        sessions = [
            [f"sku{rng.randrange(N_ITEMS)}" for _ in range(rng.randint(1, 6))] for _ in range(rng.randint(1, 3))
        ]
        body: dict = {"k": rng.randint(3, 12), "exclude_seen": bool(i % 2)}
        if len(sessions) == 1 and i % 3:
            body["session"] = sessions[0]
        else:
            body["sessions"] = sessions
        bodies.append(body)
    return bodies


def expected(predictor: Predictor, body: dict) -> list[list[str]]:
    sessions = body["sessions"] if "sessions" in body else [body["session"]]
    return [predictor.predict(s, body["k"], body["exclude_seen"])["items"] for s in sessions]


def answered(payload: dict) -> list[list[str]]:
    return [r["items"] for r in payload["results"]] if "results" in payload else [payload["items"]]


@pytest.mark.timeout(180)  # a batcher that loses a waiter hangs its client: fail instead
def test_each_micro_batched_answer_returns_to_its_own_request(artifact: Path, tmp_path: Path) -> None:
    """Catches a batcher that hands results out in the wrong order (reversed, or by completion),
    slices the flat result list at the wrong offsets (every request getting the first one's answers,
    or its neighbour's), or mixes up per-request ``k`` and ``exclude_seen`` inside a batch."""
    predictor = Predictor.from_artifact(artifact)
    deployer = LocalDeployer(max_batch=64, log_level="error", smoke_k=5)
    deployment = deployer.deploy(artifact, tmp_path / "run")
    try:
        batcher = deployer._app.batcher  # the server's own counters: scoring calls and sessions scored
        batcher.batches = batcher.sessions = 0
        host, port = "127.0.0.1", int(deployment.details["port"])
        start = threading.Barrier(CLIENTS)

        def client(c: int) -> list[tuple[dict, int, dict]]:
            conn = HTTPConnection(host, port, timeout=60)
            out = []
            try:
                start.wait(timeout=60)
                for body in request_bodies(c):
                    conn.request("POST", "/invocations", json.dumps(body), {"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    out.append((body, resp.status, json.loads(resp.read())))
            finally:
                conn.close()
            return out

        with ThreadPoolExecutor(CLIENTS) as pool:
            results = [r for rows in pool.map(client, range(CLIENTS)) for r in rows]
        batches = batcher.batches
    finally:
        deployer.teardown()

    assert len(results) == CLIENTS * REQUESTS_PER_CLIENT
    assert all(status == 200 for _, status, _ in results), [p for _, s, p in results if s != 200][:3]
    wrong = [(body, payload) for body, _, payload in results if answered(payload) != expected(predictor, body)]
    assert not wrong, f"{len(wrong)} requests got another request's answer, e.g. the one for {wrong[0][0]}"
    distinct = {json.dumps(answered(payload)) for _, _, payload in results}
    assert len(distinct) >= 0.9 * len(results), "the requests' answers must differ for the check to mean anything"
    # requests were really scored together: fewer scoring calls than requests
    assert batches < len(results), f"{batches} scoring calls for {len(results)} requests: no micro-batching happened"
