"""The HTTP face of the serving contract: ``GET /ping`` and ``POST /invocations`` over a Predictor.

Why it looks the way it does:

* **One hot path, written as raw ASGI.** ``/ping`` and ``/invocations`` are answered by
  :class:`ServingApp` before any framework routing; FastAPI serves the same two routes (for the
  OpenAPI docs at ``/docs`` and ``/openapi.json``) and everything else, with JSON errors. The fast
  path costs about half the event-loop CPU per request of FastAPI's routing, which matters when
  scoring a session of a batch costs about as much (serving figures: docs/benchmarks.md).
* **Micro-batching.** Parsed requests wait in a queue; one worker thread scores whatever has
  queued while the previous batch ran, with one ``score_next`` call and one ``topk``. Under load the
  batches grow by themselves; when idle a request is scored alone, with no added wait.
* **Never a 5xx for client input.** Bodies are read with a byte limit (413 over it, drained so the
  client sees the answer), decoded with orjson when installed, validated by
  :meth:`~recframe.deployer.predictor.Predictor.parse`, and every error is ``{"error": "..."}``.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from recframe.deployer.jsoncodec import decode, error_body
from recframe.deployer.jsoncodec import dumps as _dumps
from recframe.deployer.predictor import Predictor, Query, RequestError

log = logging.getLogger(__name__)

JSON_HEADERS = [(b"content-type", b"application/json")]
DEFAULT_MAX_BODY_BYTES = 1 << 20
# A body far beyond the limit is not drained (that would let a client make us read forever); the
# connection is closed after the 413 instead.
_DRAIN_FACTOR = 64


class BodyTooLarge(Exception):
    """The request body exceeded the configured limit."""


async def read_body(receive: Any, limit: int) -> bytes:
    """Read a request body, refusing more than ``limit`` bytes but draining up to a bound so the
    client, still sending, reads a clean 413 instead of a reset connection."""
    chunks: list[bytes] = []
    size, too_large, more = 0, False, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client disconnected")
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        size += len(chunk)
        if size > limit:
            too_large = True
            chunks = []
            if size > limit * _DRAIN_FACTOR:
                break
        elif chunk:
            chunks.append(chunk)
    if too_large:
        raise BodyTooLarge(f"request body is larger than the {limit}-byte limit")
    return b"".join(chunks)


class MicroBatcher:
    """Collects parsed queries and scores them together on one worker thread.

    The event loop keeps parsing requests while a batch is being scored, so the next batch is
    whatever arrived meanwhile: no timer, no added latency when idle, bigger batches under load.
    """

    def __init__(self, predictor: Predictor, max_batch: int = 256) -> None:
        self.predictor = predictor
        self.max_batch = max(1, int(max_batch))
        self._queue: asyncio.Queue[tuple[Query, asyncio.Future]] | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recframe-predict")
        self.batches = 0
        self.sessions = 0

    def _ensure_started(self) -> asyncio.Queue:
        if self._queue is None or self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._run(self._queue))
        return self._queue

    async def submit(self, query: Query) -> list[dict[str, Any]]:
        """Queue one validated query and wait for its results."""
        fut = asyncio.get_running_loop().create_future()
        self._ensure_started().put_nowait((query, fut))
        return await fut

    async def _run(self, queue: asyncio.Queue) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await queue.get()
            batch = [first]
            n = len(first[0].sessions)
            while n < self.max_batch and not queue.empty():
                item = queue.get_nowait()
                batch.append(item)
                n += len(item[0].sessions)
            try:
                results = await loop.run_in_executor(self._executor, self._score, [q for q, _ in batch])
            except Exception as e:  # a server bug: every waiter gets it, the loop survives
                log.exception("prediction failed")
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            for (_, fut), res in zip(batch, results, strict=True):
                if not fut.done():  # the client may have gone away
                    fut.set_result(res)

    def _score(self, queries: list[Query]) -> list[list[dict[str, Any]]]:
        sessions: list[list[str]] = []
        ks: list[int] = []
        excl: list[bool] = []
        for q in queries:
            sessions.extend(q.sessions)
            ks.extend([q.k] * len(q.sessions))
            excl.extend([q.exclude_seen] * len(q.sessions))
        flat: list[dict[str, Any]] = []
        step = self.max_batch  # a 1,000-session request is scored in slices: bounded memory per call
        for lo in range(0, len(sessions), step):
            flat.extend(self.predictor.predict_many(sessions[lo : lo + step], ks[lo : lo + step], excl[lo : lo + step]))
        self.batches += 1
        self.sessions += len(sessions)
        out, start = [], 0
        for q in queries:
            out.append(flat[start : start + len(q.sessions)])
            start += len(q.sessions)
        return out

    def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)


class ServingApp:
    """ASGI app: the contract's two routes on a fast path, FastAPI for docs and everything else."""

    def __init__(
        self,
        predictor: Predictor,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_batch: int = 256,
        fast_path: bool = True,
    ):
        self.predictor = predictor
        self.fast_path = fast_path
        self.max_body_bytes = int(max_body_bytes)
        self.batcher = MicroBatcher(predictor, max_batch)
        self.fastapi = _build_fastapi(self)
        self.ready = True

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.fast_path:
            path = scope["path"]
            if path == "/invocations" and scope["method"] == "POST":
                status, body = await self.invocations(receive)
                await _respond(send, status, body)
                return
            if path == "/ping" and scope["method"] == "GET":
                status, body = self.ping()
                await _respond(send, status, body)
                return
        await self.fastapi(scope, receive, send)

    def ping(self) -> tuple[int, bytes]:
        if not self.ready:
            return 503, error_body("model not loaded")
        return 200, _dumps({"status": "ok", "model": self.predictor.model_name, "n_items": self.predictor.n_items})

    async def invocations(self, receive: Any) -> tuple[int, bytes]:
        """Read, validate, score: the whole request cycle; returns ``(status, body)``, never raises
        for anything a client sends."""
        try:
            body = await read_body(receive, self.max_body_bytes)
            query = self.predictor.parse(decode(body))
            results = await self.batcher.submit(query)
            return 200, _dumps(Predictor.shape(query, results))
        except RequestError as e:
            return e.status, error_body(e.message)
        except BodyTooLarge as e:
            return 413, error_body(str(e))
        except ConnectionError:
            return 400, error_body("client disconnected before sending the whole body")
        except Exception as e:  # a server bug, not client input: still JSON, and logged
            log.exception("unexpected error in /invocations")
            return 500, error_body(f"internal error: {type(e).__name__}")

    def close(self) -> None:
        self.ready = False
        self.batcher.close()


async def _respond(send: Any, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*JSON_HEADERS, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _build_fastapi(serving: ServingApp) -> FastAPI:
    """The documented app: same handlers as the fast path, OpenAPI schemas, JSON for every error."""
    pred = serving.predictor
    example = pred.example_session(2)
    app = FastAPI(
        title="recframe endpoint",
        version="1",
        description=(
            "Next-item recommendations for a shopping session. SKUs in, SKUs out. Unknown SKUs are "
            "ignored and counted; items already in the session are excluded unless "
            '`"exclude_seen": false`; sessions with no known SKU get the most popular items. '
            f"`k` is an integer in [1, {pred.limits.max_k}] (clamped to the {pred.n_items} items of the "
            f"catalogue). Bodies over {serving.max_body_bytes} bytes get 413; every error is "
            '`{"error": "..."}` with a 4xx status.'
        ),
    )

    def json_response(status: int, body: bytes) -> Response:
        return Response(content=body, status_code=status, media_type="application/json")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return json_response(exc.status_code, error_body(str(exc.detail)))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        return json_response(422, error_body(str(exc.errors())[:500]))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error")
        return json_response(500, error_body(f"internal error: {type(exc).__name__}"))

    request_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "session": {"type": "array", "items": {"type": ["string", "integer"]}, "description": "SKUs, oldest first"},
            "sessions": {
                "type": "array",
                "items": {"type": "array", "items": {"type": ["string", "integer"]}},
                "description": "a batch of sessions",
            },
            "k": {"type": "integer", "minimum": 1, "maximum": pred.limits.max_k, "default": pred.limits.default_k},
            "exclude_seen": {"type": "boolean", "default": pred.limits.exclude_seen},
        },
        "oneOf": [{"required": ["session"]}, {"required": ["sessions"]}],
    }
    result_schema = {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"type": "string"}},
            "scores": {"type": "array", "items": {"type": "number"}},
            "unknown": {"type": "integer", "description": "SKUs of the session not in the catalogue"},
        },
    }
    batch_schema = {"type": "object", "properties": {"results": {"type": "array", "items": result_schema}}}
    error_schema = {"type": "object", "properties": {"error": {"type": "string"}}}

    @app.get("/ping", summary="200 when the model is loaded", response_model=None)
    async def ping() -> Response:
        return json_response(*serving.ping())

    @app.post(
        "/invocations",
        response_model=None,
        summary="Recommend the next items for a session (or a batch of sessions)",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": request_schema,
                        "examples": {
                            "single": {"value": {"session": example, "k": 10}},
                            "batch": {"value": {"sessions": [example, example[:1]], "k": 5}},
                        },
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "a result, or {results: [...]} for a batch",
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [
                                    result_schema,
                                    batch_schema,
                                ]
                            }
                        }
                    },
                },
                "400": {"description": "invalid JSON", "content": {"application/json": {"schema": error_schema}}},
                "413": {"description": "body too large", "content": {"application/json": {"schema": error_schema}}},
                "422": {"description": "invalid request", "content": {"application/json": {"schema": error_schema}}},
            },
        },
    )
    async def invocations(request: Request) -> Response:
        return json_response(*(await serving.invocations(request.receive)))

    return app


def create_app(
    predictor: Predictor, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, max_batch: int = 256, fast_path: bool = True
) -> ServingApp:
    """Build the ASGI app serving ``predictor`` (pass it to uvicorn or any ASGI server).

    ``fast_path=False`` sends every request through FastAPI's routing (same handlers, same answers):
    for comparison, see ``benchmarks/serving.py --no-fast-path``."""
    return ServingApp(predictor, max_body_bytes=max_body_bytes, max_batch=max_batch, fast_path=fast_path)


def app_from_env() -> ServingApp:
    """ASGI factory for ``uvicorn --factory recframe.deployer.serving:app_from_env`` (the Docker image and
    multi-worker mode): the artifact comes from ``RECFRAME_ARTIFACT``, limits from ``RECFRAME_*``."""
    import os

    from recframe.deployer.predictor import ServingLimits

    artifact = os.environ.get("RECFRAME_ARTIFACT", "/opt/ml/model")
    limits = ServingLimits(
        default_k=int(os.environ.get("RECFRAME_DEFAULT_K", 10)),
        max_k=int(os.environ.get("RECFRAME_MAX_K", 1000)),
        max_session_len=int(os.environ.get("RECFRAME_MAX_SESSION_LEN", 1000)),
        max_sessions=int(os.environ.get("RECFRAME_MAX_SESSIONS", 1000)),
        exclude_seen=os.environ.get("RECFRAME_EXCLUDE_SEEN", "true").lower() in ("1", "true", "yes"),
    )
    threads = os.environ.get("RECFRAME_TORCH_THREADS")
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    return create_app(
        Predictor.from_artifact(artifact, limits),
        max_body_bytes=int(os.environ.get("RECFRAME_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)),
        max_batch=int(os.environ.get("RECFRAME_MAX_BATCH", 256)),
    )
