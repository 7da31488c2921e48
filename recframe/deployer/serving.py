"""The HTTP face of the serving contract: ``GET /ping`` and ``POST /invocations`` over a Predictor, and ``/metrics``.

Why it looks the way it does:

* **One hot path, written as raw ASGI.** ``/ping`` and ``/invocations`` are answered by
  :class:`ServingApp` before any framework routing; FastAPI serves the same two routes (for the
  OpenAPI docs at ``/docs`` and ``/openapi.json``) and everything else, with JSON errors. The fast
  path costs about half the event-loop CPU per request of FastAPI's routing, which matters when
  scoring a session of a batch costs about as much (serving figures: docs/benchmarks.md).
* **Micro-batching.** Parsed requests wait in a queue; one worker thread scores whatever has
  queued while the previous batch ran, with one ``score_next`` call and one ``topk``. Under load the
  batches grow by themselves; when idle a request is scored alone, with no added wait.
* **Ready means loaded, and the model can change under traffic.** The app may start without a model
  (``/ping`` answers 503 until :meth:`ServingApp.swap` gives it one); a later ``swap`` replaces the
  model between two micro-batches, so no request is dropped (``recframe serve`` does this on a
  promotion or SIGHUP).
* **Metrics that cost nothing per request but increments.** ``/metrics`` (Prometheus text format,
  :mod:`recframe.deployer.serving_metrics`) counts requests by status, times ``/invocations`` and
  records batch sizes and unknown SKUs per batch.
* **Never a 5xx for client input.** Bodies are read with a byte limit (413 over it, drained so the
  client sees the answer), decoded with orjson when installed, validated by
  :meth:`~recframe.deployer.predictor.Predictor.parse`, and every error is ``{"error": "..."}``.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from time import perf_counter
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from recframe.deployer.docs_app import build_fastapi
from recframe.deployer.jsoncodec import decode, error_body
from recframe.deployer.jsoncodec import dumps as _dumps
from recframe.deployer.predictor import Predictor, Query, RequestError, ServingLimits
from recframe.deployer.score_blocks import torch_threads

if TYPE_CHECKING:
    from recframe.deployer.serving_metrics import ServingMetrics

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

    def __init__(
        self, predictor: Predictor | None, max_batch: int = 256, metrics: ServingMetrics | None = None
    ) -> None:
        self.predictor = predictor  # replaced by ServingApp.swap; each batch reads it once
        self.metrics = metrics
        self.max_batch = max(1, int(max_batch))
        self._queue: asyncio.Queue[tuple[Query, asyncio.Future]] | None = None
        self._task: asyncio.Task | None = None
        import torch

        # the predict thread keeps the math threads of the thread that made the batcher (the server's
        # setting, serving_process.serving_threads): a new thread would otherwise get OpenMP's default
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="recframe-predict", initializer=torch_threads,
            initargs=(torch.get_num_threads(),),
        )  # fmt: skip
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
        predictor = self.predictor  # one model per batch, even while a swap happens
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
            flat.extend(predictor.predict_many(sessions[lo : lo + step], ks[lo : lo + step], excl[lo : lo + step]))
        self.batches += 1
        self.sessions += len(sessions)
        if self.metrics is not None:
            self.metrics.batch(len(sessions), sum(map(len, sessions)), sum(r["unknown"] for r in flat))
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
    """ASGI app: the contract's two routes on a fast path, ``/metrics``, FastAPI for docs and the rest.

    It may start without a model (``/ping`` and ``/invocations`` answer 503 until :meth:`swap` gives
    it one) and :meth:`swap` replaces the model while requests flow: queries already queued are
    scored by whichever model is current when their batch starts, and none is dropped.
    """

    def __init__(
        self,
        predictor: Predictor | None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_batch: int = 256,
        fast_path: bool = True,
        metrics: ServingMetrics | None = None,
        version: str | None = None,
    ):
        self.fast_path = fast_path
        self.max_body_bytes = int(max_body_bytes)
        self.metrics = metrics
        self.batcher = MicroBatcher(None, max_batch, metrics)
        self.predictor: Predictor | None = None
        self.version: str | None = None
        self.fastapi: FastAPI | None = None
        self.ready = False
        if predictor is not None:
            self.swap(predictor, version)

    def swap(self, predictor: Predictor, version: str | None = None) -> None:
        """Serve ``predictor`` from now on (the first model, or a replacement)."""
        docs = build_fastapi(self, predictor)
        self.batcher.predictor = predictor
        self.predictor, self.version, self.fastapi = predictor, version, docs
        self.ready = True
        if self.metrics is not None:
            self.metrics.model(predictor.model_name, version or "unversioned")

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if self.fastapi is not None:
                await self.fastapi(scope, receive, send)
            return
        path, m = scope["path"], self.metrics
        if path == "/metrics" and m is not None and scope["method"] == "GET":
            body, content_type = m.render()
            await _respond(send, 200, body, [(b"content-type", content_type.encode())])
            m.request("/metrics", 200)
            return
        if self.fast_path:
            if path == "/invocations" and scope["method"] == "POST":
                t0 = perf_counter()
                status, body = await self.invocations(receive)
                await _respond(send, status, body)
                if m is not None:
                    m.invocation(status, perf_counter() - t0)
                return
            if path == "/ping" and scope["method"] == "GET":
                status, body = self.ping()
                await _respond(send, status, body)
                if m is not None:
                    m.request("/ping", status)
                return
        docs = self.fastapi
        if docs is None:  # no model yet: no documented app either
            await _respond(send, 503, error_body("model not loaded"))
            if m is not None:
                m.request(path if path in ("/invocations", "/ping") else "other", 503)
            return
        if m is None:
            await docs(scope, receive, send)
        else:
            await self._counted(docs, scope, receive, send, m)

    async def _counted(self, app: Any, scope: dict, receive: Any, send: Any, m: ServingMetrics) -> None:
        """Run a FastAPI-routed request and count it like the fast path does."""
        t0, status = perf_counter(), 500

        async def send_seen(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_seen)
        finally:
            path = scope["path"]
            if path == "/invocations":
                m.invocation(status, perf_counter() - t0)
            else:
                m.request(path if path == "/ping" else "other", status)

    def ping(self) -> tuple[int, bytes]:
        pred = self.predictor
        if pred is None or not self.ready:
            return 503, error_body("model not loaded")
        answer = {"status": "ok", "model": pred.model_name, "n_items": pred.n_items}
        if self.version:
            answer["version"] = self.version
        return 200, _dumps(answer)

    async def invocations(self, receive: Any) -> tuple[int, bytes]:
        """Read, validate, score: the whole request cycle; returns ``(status, body)``, never raises
        for anything a client sends."""
        pred = self.predictor
        if pred is None:
            return 503, error_body("model not loaded")
        try:
            body = await read_body(receive, self.max_body_bytes)
            query = pred.parse(decode(body))
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


async def _respond(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]] = JSON_HEADERS) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app(
    predictor: Predictor | None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_batch: int = 256,
    fast_path: bool = True,
    metrics: bool = False,
    version: str | None = None,
) -> ServingApp:
    """Build the ASGI app serving ``predictor`` (pass it to uvicorn or any ASGI server).

    ``fast_path=False`` sends every request through FastAPI's routing (same handlers, same answers):
    for comparison, see ``benchmarks/serving.py --no-fast-path``. ``metrics`` adds ``/metrics``
    (see :mod:`recframe.deployer.serving_metrics`). ``predictor=None`` starts without a model: it is
    not ready until :meth:`ServingApp.swap` loads one."""
    collector = None
    if metrics:
        from recframe.deployer.serving_metrics import ServingMetrics

        collector = ServingMetrics()
    return ServingApp(
        predictor, max_body_bytes=max_body_bytes, max_batch=max_batch, fast_path=fast_path, metrics=collector,
        version=version,
    )  # fmt: skip


def env_flag(name: str, default: bool) -> bool:
    """A ``RECFRAME_*`` boolean from the environment (``1/true/yes`` or ``0/false/no``)."""
    import os

    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in ("1", "true", "yes")


def limits_from_env() -> ServingLimits:
    """The serving limits a worker process reads from ``RECFRAME_*`` (see ``docs/deployment.md``)."""
    import os

    return ServingLimits(
        default_k=int(os.environ.get("RECFRAME_DEFAULT_K", 10)),
        max_k=int(os.environ.get("RECFRAME_MAX_K", 1000)),
        max_session_len=int(os.environ.get("RECFRAME_MAX_SESSION_LEN", 1000)),
        max_sessions=int(os.environ.get("RECFRAME_MAX_SESSIONS", 1000)),
        exclude_seen=env_flag("RECFRAME_EXCLUDE_SEEN", True),
    )


def app_from_env(predictor: Predictor | None = None, version: str | None = None) -> ServingApp:
    """ASGI factory for ``uvicorn --factory recframe.deployer.serving:app_from_env`` (the Docker image and
    multi-worker mode): the artifact comes from ``RECFRAME_ARTIFACT``, limits from ``RECFRAME_*``,
    ``/metrics`` unless ``RECFRAME_METRICS=false``. A caller that loaded the model itself passes it.
    The worker process is set up for serving (:mod:`recframe.deployer.serving_process`)."""
    import os

    from recframe.deployer.serving_process import freeze_heap, serving_threads, short_switch_interval

    threads = os.environ.get("RECFRAME_TORCH_THREADS")
    if threads:
        serving_threads(int(threads))
    short_switch_interval()
    if predictor is None:
        predictor = Predictor.from_artifact(os.environ.get("RECFRAME_ARTIFACT", "/opt/ml/model"), limits_from_env())
    app = create_app(
        predictor,
        max_body_bytes=int(os.environ.get("RECFRAME_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)),
        max_batch=int(os.environ.get("RECFRAME_MAX_BATCH", 256)),
        metrics=env_flag("RECFRAME_METRICS", True),
        version=version,
    )
    freeze_heap()
    return app
