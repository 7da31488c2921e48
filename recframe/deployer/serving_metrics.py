"""``/metrics``: the serving app's Prometheus metrics (text exposition format, prometheus-client).

What an operator watches on a recommender endpoint, and nothing that costs per request beyond
prometheus-client's own increments:

* ``recframe_requests_total{route, status}``: requests answered, by route (``/invocations``,
  ``/ping``, ``/metrics``, ``other``) and HTTP status, 4xx for bad requests included;
* ``recframe_request_duration_seconds``: a latency histogram of ``/invocations``;
* ``recframe_batch_sessions``: sessions scored together per micro-batch;
* ``recframe_session_items_total`` and ``recframe_unknown_items_total``: SKUs received and those the
  model does not know, counted per batch, with ``recframe_unknown_item_share`` (their ratio)
  computed when scraped;
* ``recframe_model_info{model, version}``: 1 for the model version being served;
  ``recframe_model_swaps_total``: models swapped in after the first.

Children of the request counter are bound once per ``(route, status)``, so a request costs a dict
lookup and the client's increments, never a label lookup or any string formatting. With several
worker processes (``PROMETHEUS_MULTIPROC_DIR`` set before the workers start) every worker writes its
values to that folder and a scrape, answered by any worker, sums them all.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from typing import Any

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
ROUTES = ("/invocations", "/ping", "/metrics", "other")
_INITIAL_SERIES = (
    *(("/invocations", status) for status in (200, 400, 413, 422, 500, 503)),
    ("/ping", 200),
    ("/ping", 503),
    ("/metrics", 200),
    ("other", 404),
)
_ITEMS, _UNKNOWN = "recframe_session_items", "recframe_unknown_items"
_dead_marker_registered = False


def multiprocess_dir() -> str | None:
    """The folder shared by worker processes, when metrics are aggregated across processes."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class ServingMetrics:
    """The metrics of one serving process, in a registry of its own (several apps may share a process)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = multiprocess_dir() is not None
        r = self.registry = CollectorRegistry(auto_describe=False)
        self._requests = Counter(
            "recframe_requests", "HTTP requests answered, by route and status", ["route", "status"], registry=r
        )
        self._latency = Histogram(
            "recframe_request_duration_seconds",
            "Time to answer POST /invocations, from the first byte read to the response written",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self._batch = Histogram(
            "recframe_batch_sessions", "Sessions scored together per micro-batch", buckets=BATCH_BUCKETS, registry=r
        )
        self._items = Counter(_ITEMS, "SKUs received in scored sessions", registry=r)
        self._unknown = Counter(_UNKNOWN, "SKUs received that the served model does not know", registry=r)
        self._model = Gauge(
            "recframe_model_info",
            "1 for the model version being served",
            ["model", "version"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self._swaps = Counter("recframe_model_swaps", "Models swapped in after the first one", registry=r)
        # the series every server has, at 0 from the start; any other (route, status) is bound when first seen
        self._children: dict[tuple[str, int], Any] = {
            (route, status): self._requests.labels(route, str(status)) for route, status in _INITIAL_SERIES
        }
        self._observe_latency = self._latency.observe
        self._serving: tuple[str, str] | None = None
        if self.multiprocess:
            _mark_dead_at_exit()

    # ------------------------------------------------------------------ recording (hot path)

    def request(self, route: str, status: int) -> None:
        """Count one answered request."""
        child = self._children.get((route, status))
        if child is None:  # a status outside the common ones: bound once, then reused
            child = self._children[(route, status)] = self._requests.labels(route, str(status))
        child.inc()

    def invocation(self, status: int, seconds: float) -> None:
        """Count one ``/invocations`` request and observe its latency."""
        self.request("/invocations", status)
        self._observe_latency(seconds)

    def batch(self, sessions: int, items: int, unknown: int) -> None:
        """Record one model call: its size and the SKUs it saw (called once per batch, not per request)."""
        self._batch.observe(sessions)
        if items:
            self._items.inc(items)
        if unknown:
            self._unknown.inc(unknown)

    # ------------------------------------------------------------------ model and exposition

    def model(self, name: str, version: str) -> None:
        """Mark ``name``/``version`` as the served model (the previous one drops to 0)."""
        if self._serving is not None:
            if self._serving == (name, version):
                return
            self._model.labels(*self._serving).set(0)
            self._swaps.inc()
        self._model.labels(name, version).set(1)
        self._serving = (name, version)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type; in multi-process mode, summed over all workers."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
        from prometheus_client.core import GaugeMetricFamily

        if self.multiprocess:
            from prometheus_client import CollectorRegistry, multiprocess

            source = CollectorRegistry(auto_describe=False)
            multiprocess.MultiProcessCollector(source)
        else:
            source = self.registry
        families = list(source.collect())
        totals = {
            f.name: sum(s.value for s in f.samples if s.name.endswith("_total"))
            for f in families
            if f.name in (_ITEMS, _UNKNOWN)
        }
        items, unknown = totals.get(_ITEMS, 0.0), totals.get(_UNKNOWN, 0.0)
        share = GaugeMetricFamily(
            "recframe_unknown_item_share", "Share of received SKUs the served model does not know (0 before any)"
        )
        share.add_metric([], unknown / items if items else 0.0)
        families.append(share)
        return generate_latest(_Families(families)), CONTENT_TYPE_LATEST


class _Families:
    """A collected set of metric families in the shape ``generate_latest`` reads."""

    def __init__(self, families: list[Any]) -> None:
        self._families = families

    def collect(self) -> list[Any]:
        return self._families


def _mark_dead_at_exit() -> None:
    """Drop this process's live gauges (the served model) from the shared folder when it exits."""
    global _dead_marker_registered
    if _dead_marker_registered:
        return
    from prometheus_client import multiprocess

    pid = os.getpid()

    def mark() -> None:
        if os.getpid() == pid and multiprocess_dir():
            with contextlib.suppress(OSError):  # the folder is already gone: nothing left to clean
                multiprocess.mark_process_dead(pid)

    atexit.register(mark)
    _dead_marker_registered = True
