"""One smoke test of the serving contract, run by every deployer right after it deploys.

It is transport-agnostic: a deployer hands in ``post(body_bytes) -> (status, decoded_json)`` (HTTP
for ``local``, ``invoke_endpoint`` for SageMaker, the V2 protocol for MLServer), so all endpoints
are checked against the same three expectations:

1. a known session answers 200 with at most ``k`` items, scores alongside, no SKU from the session
   (the request sets ``exclude_seen``) and ``unknown == 0``;
2. a batch of a known and an unknown-only session answers one result per session, the second one
   popular items with ``unknown == 1``;
3. a malformed request answers a 4xx with a JSON ``{"error": ...}``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

UNKNOWN_SKU = "__recframe_smoke_unknown_sku__"

Post = Callable[[bytes], tuple[int, Any]]


def example_session(artifact_dir: str | Path, n: int = 2) -> list[str]:
    """The ``n`` most popular SKUs of an artifact's vocabulary: a session every model knows."""
    vocab = json.loads((Path(artifact_dir) / "vocab.json").read_text())
    items, counts = vocab["items"], vocab.get("counts") or [0] * len(vocab["items"])
    order = sorted(range(len(items)), key=lambda i: -counts[i])
    return [str(items[i]) for i in order[:n]]


def _check_result(res: Any, k: int, session: Sequence[str], unknown: int) -> str | None:
    if not isinstance(res, dict):
        return f"result is not an object: {str(res)[:100]}"
    items, scores = res.get("items"), res.get("scores")
    if not isinstance(items, list) or not isinstance(scores, list):
        return f"result lacks items/scores lists: {str(res)[:100]}"
    if not items or len(items) > k or len(items) != len(scores):
        return f"expected 1..{k} items with as many scores, got {len(items)} items and {len(scores)} scores"
    seen = set(session)
    if any(i in seen for i in items):
        return "an item of the session was recommended although exclude_seen was true"
    if res.get("unknown") != unknown:
        return f"expected unknown={unknown}, got {res.get('unknown')!r}"
    return None


def run_smoke(post: Post, session: Sequence[str], k: int = 10) -> dict[str, Any]:
    """Run the three checks; return ``{"passed": bool, "checks": {...}}`` (never raises)."""
    session = list(session)
    checks: dict[str, dict[str, Any]] = {}

    def timed(name: str, body: dict | bytes, judge: Callable[[int, Any], str | None]) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        t0 = time.perf_counter()
        try:
            status, answer = post(raw)
            problem = judge(status, answer)
        except Exception as e:  # a broken endpoint is a failed check, not a crash of the pipeline
            status, problem = None, f"{type(e).__name__}: {str(e)[:200]}"
        checks[name] = {
            "passed": problem is None,
            "status": status,
            "ms": round((time.perf_counter() - t0) * 1000, 2),
            **({"problem": problem} if problem else {}),
        }

    def single(status: int, answer: Any) -> str | None:
        if status != 200:
            return f"expected 200, got {status}: {str(answer)[:200]}"
        return _check_result(answer, k, session, 0)

    def batch(status: int, answer: Any) -> str | None:
        if status != 200:
            return f"expected 200, got {status}: {str(answer)[:200]}"
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list) or len(results) != 2:
            return f"expected 2 results, got {str(answer)[:200]}"
        return _check_result(results[0], k, session, 0) or _check_result(results[1], k, [UNKNOWN_SKU], 1)

    def malformed(status: int, answer: Any) -> str | None:
        if not isinstance(status, int) or not 400 <= status < 500:
            return f"expected a 4xx, got {status}"
        if not isinstance(answer, dict) or not isinstance(answer.get("error"), str):
            return f'expected a JSON {{"error": ...}}, got {str(answer)[:200]}'
        return None

    # exclude_seen is explicit: the endpoint's default is configurable, the check must not depend on it
    timed("single", {"session": session, "k": k, "exclude_seen": True}, single)
    timed("batch", {"sessions": [session, [UNKNOWN_SKU]], "k": k, "exclude_seen": True}, batch)
    timed("malformed", b'{"session": "not-a-list", "k": 0}', malformed)
    return {"passed": all(c["passed"] for c in checks.values()), "session": session, "k": k, "checks": checks}


def failed_checks(smoke: dict[str, Any]) -> str:
    """A one-line summary of what failed, for error messages."""
    bad = [f"{name}: {c.get('problem')}" for name, c in smoke.get("checks", {}).items() if not c.get("passed")]
    return "; ".join(bad) or "no check failed"


def http_post(url: str, timeout: float = 10.0) -> Post:
    """``post`` over plain HTTP with the standard library, proxies bypassed (loopback stays loopback)."""
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def post(body: bytes) -> tuple[int, Any]:
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
        try:
            with opener.open(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw or b"null")
            except ValueError:
                return e.code, raw.decode(errors="replace")

    return post


def http_get_status(url: str, timeout: float = 2.0) -> int | None:
    """Status of a GET, or None when nothing answers yet."""
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except (OSError, ValueError):
        return None
