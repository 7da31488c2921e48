"""``recframe serve RUN_DIR | champion``: a run's model (or the tenant's champion) behind the local server.

The server speaks the serving contract (``/ping``, ``/invocations``) plus ``/metrics`` and is built
for operations rather than for a pipeline step:

* **Ready means loaded.** The port is bound first and the model loads in the background; ``/ping``
  answers 503 until it is loaded, so a load balancer or a test never sends traffic to an empty
  server.
* **Draining on SIGTERM.** The server stops accepting connections and answers every request already
  received before it exits (up to ``--drain-timeout`` seconds).
* **Swapping without dropping.** SIGHUP, or the champion changing in the registry (checked every
  ``--watch`` seconds; for a run directory, its artifact being rewritten), loads the new artifact
  beside the old one and swaps it in: requests keep being answered throughout, by the old model until
  the swap and by the new one after. A new artifact that fails to load leaves the old one serving.
* **Several workers.** ``--workers N`` runs N processes on one socket; their metrics are summed
  (prometheus-client's multi-process mode) and a swap replaces the workers one at a time, each new
  one loaded before an old one is retired.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recframe.deployer.champion import artifact_dir, artifact_version, resolve_champion
from recframe.deployer.local import endpoint_url, listen, server_config
from recframe.interfaces import ConfigError, RecframeError

log = logging.getLogger("recframe.serve")
CHAMPION = "champion"
STARTUP_TIMEOUT_S = 120


def default_warehouse() -> Path:
    """The embedded warehouse of ``datasource=duckdb`` (``$RECFRAME_HOME/warehouse.duckdb``)."""
    return Path(os.environ.get("RECFRAME_HOME") or ".recframe") / "warehouse.duckdb"


@dataclass(frozen=True)
class ServeSettings:
    """How ``recframe serve`` listens and serves (the command-line options)."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    watch_s: float = 2.0
    drain_timeout_s: int = 30
    metrics: bool = True
    max_batch: int = 256
    exclude_seen: bool = True
    log_level: str = "warning"


class ModelSource:
    """Where the served artifact comes from: a run directory, or a tenant's champion in the registry."""

    def __init__(self, target: str, warehouse: str | Path | None = None, tenant: str = "default") -> None:
        self.target = str(target)
        self.champion = self.target == CHAMPION
        self.warehouse = Path(warehouse) if warehouse is not None else (default_warehouse() if self.champion else None)
        self.tenant = tenant

    def resolve(self, wait_s: float = 30) -> Path:
        """The artifact folder to serve now (one line of :class:`~recframe.interfaces.RecframeError` if none);
        ``wait_s`` bounds the wait for a warehouse another recframe process is writing."""
        if self.champion:
            return artifact_dir(resolve_champion(self.tenant, self.warehouse, lock_timeout_s=wait_s))
        return artifact_dir(self.target)

    def fingerprint(self) -> tuple[Any, ...]:
        """Cheap to compute; it changes whenever the artifact to serve may have changed."""
        if self.champion:  # DuckDB writes through its WAL, then checkpoints into the file
            paths = [self.warehouse, self.warehouse.with_name(self.warehouse.name + ".wal")]
        else:
            paths = [Path(self.target) / "model" / "checksums.json", Path(self.target) / "checksums.json"]
        return tuple(_stat(p) for p in paths)

    def describe(self) -> str:
        return f"the champion of tenant {self.tenant!r} in {self.warehouse}" if self.champion else self.target


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class Reloader(threading.Thread):
    """Loads the first model into the app, then swaps in new ones on request or when the source changes."""

    def __init__(self, app: Any, source: ModelSource, limits: Any, watch_s: float, on_fatal: Any) -> None:
        super().__init__(name="recframe-reload", daemon=True)
        self.app, self.source, self.limits, self.watch_s = app, source, limits, watch_s
        self.on_fatal = on_fatal
        self.error: str | None = None
        self._wake, self._stop = threading.Event(), threading.Event()
        self._forced = False
        self._last_error: str | None = None
        self._fingerprint: tuple[Any, ...] | None = None
        self.on_first_model: Any = None  # called once the first model serves

    def request(self) -> None:
        """Reload now (SIGHUP); safe to call from a signal handler."""
        self._forced = True
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def run(self) -> None:
        try:
            self.load()
        except Exception as e:  # nothing to serve: the server stops with this one line
            self.error = _one_line(e)
            self.on_fatal()
            return
        while not self._stop.is_set():
            self._wake.wait(self.watch_s if self.watch_s > 0 else None)
            if self._stop.is_set():
                return
            self._wake.clear()
            forced, self._forced = self._forced, False
            if not forced and self.source.fingerprint() == self._fingerprint:
                continue
            try:
                self.load(wait_s=1.0)  # a warehouse busy with a data step is looked at again next time
                self._last_error = None
            except Exception as e:  # a bad new artifact, a busy warehouse: keep serving the current model
                message = _one_line(e)
                if message != self._last_error:  # once per distinct problem, not every --watch seconds
                    log.error("still serving %s: cannot load the new model: %s", self.app.version, message)
                self._last_error = message

    def load(self, wait_s: float = 30) -> None:
        """Resolve the source and swap its artifact in when it differs from the one being served."""
        from recframe.deployer.predictor import Predictor

        fingerprint = self.source.fingerprint()  # taken first: a change during the load is seen next time
        model_dir = self.source.resolve(wait_s)
        version = artifact_version(model_dir)
        if version != self.app.version:
            first = self.app.predictor is None
            self.app.swap(Predictor.from_artifact(model_dir, self.limits), version)
            log.warning("serving %s from %s", version, model_dir)
            if first and self.on_first_model is not None:
                self.on_first_model()
        self._fingerprint = fingerprint


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


class ModelServer:
    """One process serving ``source``: ``start()`` binds and begins loading, ``run()`` serves until
    stopped (SIGTERM/SIGINT in the main thread, or :meth:`stop`), draining in-flight requests."""

    def __init__(self, source: ModelSource, settings: ServeSettings | None = None) -> None:
        self.source, self.settings = source, settings or ServeSettings()
        self.url: str | None = None
        self.app: Any = None
        self._server: Any = None
        self._sock: Any = None
        self.reloader: Reloader | None = None
        self.on_first_model: Any = None  # e.g. freeze_heap, where this server owns its process

    def start(self) -> str:
        import uvicorn

        from recframe.deployer.predictor import ServingLimits
        from recframe.deployer.serving import create_app

        s = self.settings
        self._sock = listen(s.host, s.port, ConfigError.plain)
        self.url = endpoint_url(s.host, self._sock.getsockname()[1])
        self.app = create_app(None, max_batch=s.max_batch, metrics=s.metrics)
        config = server_config(self.app, s.log_level, s.drain_timeout_s)
        self._server = uvicorn.Server(config)
        limits = ServingLimits(exclude_seen=s.exclude_seen)
        self.reloader = Reloader(self.app, self.source, limits, s.watch_s, on_fatal=self.stop)
        self.reloader.on_first_model = self.on_first_model
        self.reloader.start()
        return self.url

    def run(self) -> None:
        """Serve until stopped; re-raise nothing, but record a failed first load in ``self.error``."""
        if self._server is None:
            self.start()
        main = threading.current_thread() is threading.main_thread()
        previous = {}
        if main:
            previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, lambda *_: self.reload())
            # uvicorn drains on SIGTERM/SIGINT, then re-raises the signal to the handler it found:
            # this one, so a drained server returns (exit 0) instead of dying by the signal
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, lambda *_: None)
        try:
            self._server.run(sockets=[self._sock])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.reloader.stop()
            self.app.close()
            self._sock.close()

    @property
    def error(self) -> str | None:
        return self.reloader.error if self.reloader is not None else None

    def reload(self) -> None:
        """Load the source again and swap the model in if it changed (what SIGHUP does)."""
        if self.reloader is not None:
            self.reloader.request()

    def stop(self) -> None:
        """Stop accepting, answer what is in flight, then return from :meth:`run`."""
        if self._server is not None:
            self._server.should_exit = True


def worker_app() -> Any:
    """ASGI factory of a ``--workers N`` worker: resolves and loads the model before serving."""
    from recframe.deployer.predictor import Predictor
    from recframe.deployer.serving import app_from_env, limits_from_env

    env = os.environ
    source = ModelSource(env["RECFRAME_SERVE_TARGET"], env.get("RECFRAME_SERVE_WAREHOUSE") or None,
                         env.get("RECFRAME_SERVE_TENANT", "default"))  # fmt: skip
    model_dir = source.resolve()
    return app_from_env(Predictor.from_artifact(model_dir, limits_from_env()), artifact_version(model_dir))


def run_workers(source: ModelSource, settings: ServeSettings, announce: Any = print) -> int:
    """Serve with ``settings.workers`` processes (uvicorn's supervisor): SIGTERM drains every worker,
    SIGHUP or a change of the source replaces them one by one."""
    from uvicorn.supervisors.multiprocess import Multiprocess

    s = settings
    sock = listen(s.host, s.port, ConfigError.plain)
    metrics_dir = None
    if s.metrics and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="recframe-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    os.environ.update(
        RECFRAME_SERVE_TARGET=source.target,
        RECFRAME_SERVE_WAREHOUSE=str(source.warehouse or ""),
        RECFRAME_SERVE_TENANT=source.tenant,
        RECFRAME_METRICS=str(s.metrics).lower(),
        RECFRAME_EXCLUDE_SEEN=str(s.exclude_seen).lower(),
        RECFRAME_MAX_BATCH=str(s.max_batch),
        RECFRAME_TORCH_THREADS=os.environ.get("RECFRAME_TORCH_THREADS", "1"),
    )
    config = server_config(
        "recframe.serve:worker_app", s.log_level, s.drain_timeout_s, factory=True, workers=s.workers,
        timeout_worker_healthcheck=STARTUP_TIMEOUT_S,  # a new worker loads torch and the model before it is ready
    )  # fmt: skip
    supervisor = Multiprocess(config, sockets=[sock])
    done = threading.Event()
    watcher = threading.Thread(target=_supervise, args=(source, s.watch_s, done), daemon=True)
    url = endpoint_url(s.host, sock.getsockname()[1])
    announce(f"recframe serve: listening on {url} ({s.workers} workers, {source.describe()})")
    try:
        watcher.start()
        supervisor.run()
    finally:
        done.set()
        sock.close()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _supervise(source: ModelSource, watch_s: float, done: threading.Event) -> None:
    """Beside uvicorn's supervisor: send this process SIGHUP (a rolling restart of the workers) when
    the source's artifact changes, and clear the metrics of workers that have exited."""
    fingerprint, version = source.fingerprint(), _version_or_none(source)
    tick = min(watch_s, 1.0) if watch_s > 0 else 1.0
    next_check = time.monotonic() + watch_s
    while not done.wait(tick):
        _forget_dead_workers()
        if watch_s <= 0 or time.monotonic() < next_check:
            continue
        next_check = time.monotonic() + watch_s
        now = source.fingerprint()
        if now == fingerprint:
            continue
        try:
            new = artifact_version(source.resolve(wait_s=1.0))
        except Exception as e:  # busy or broken: look again next time
            log.error("cannot resolve %s: %s", source.describe(), _one_line(e))
            continue
        fingerprint = now
        if new != version:
            log.warning("%s is now %s: replacing the workers", source.describe(), new)
            os.kill(os.getpid(), signal.SIGHUP)
        version = new


def _forget_dead_workers() -> None:
    """Drop the live gauges (the served model) of worker processes that are gone.

    A worker stopped by a signal never runs its exit hooks, so its files would keep reporting the
    model it served; counters are kept, since a scrape sums the requests of past workers too.
    """
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return
    from prometheus_client import multiprocess

    for path in Path(folder).glob("gauge_live*_*.db"):
        try:
            pid = int(path.stem.rsplit("_", 1)[1])
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, folder)
        except (OSError, ValueError):  # alive (owned by someone else), or not a worker's file
            pass


def _version_or_none(source: ModelSource) -> str | None:
    try:
        return artifact_version(source.resolve())
    except Exception:  # checked again at the next change
        return None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage block
        raise ConfigError.plain(f"recframe serve: {message} (see recframe serve --help)")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = _Parser(prog="recframe serve", description="Serve a run's model, or the tenant's champion, over HTTP.")
    p.add_argument("target", help="a run directory (or a model artifact folder), or 'champion'")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 = any free port)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--warehouse", help="DuckDB file holding model_registry (champion; default $RECFRAME_HOME's)")
    p.add_argument("--tenant", default="default", help="tenant whose champion is served (default 'default')")
    p.add_argument("--watch", type=float, default=2.0, help="seconds between checks for a new artifact (0 = off)")
    p.add_argument("--drain-timeout", type=int, default=30, help="seconds to answer in-flight requests on SIGTERM")
    p.add_argument("--max-batch", type=int, default=256, help="most sessions scored together")
    p.add_argument("--include-seen", action="store_true", help="items already in the session may be recommended")
    p.add_argument("--no-metrics", action="store_true", help="do not serve /metrics")
    p.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    args = p.parse_args(list(argv))
    if not 0 <= args.port <= 65535:
        raise ConfigError.plain(f"recframe serve: --port must be in [0, 65535], got {args.port}")
    if not 1 <= args.workers <= 64:
        raise ConfigError.plain(f"recframe serve: --workers must be in [1, 64], got {args.workers}")
    if args.watch < 0 or args.drain_timeout < 0 or args.max_batch < 1:
        raise ConfigError.plain("recframe serve: --watch and --drain-timeout must be >= 0, --max-batch >= 1")
    return args


def serve(source: ModelSource, settings: ServeSettings, announce: Any = print) -> int:
    """Serve ``source`` until SIGTERM/SIGINT (0 after the drain); a model that never loads raises
    :class:`~recframe.interfaces.RecframeError`."""
    if settings.workers > 1:
        return run_workers(source, settings, announce)
    from recframe.deployer.serving_process import freeze_heap, serving_threads, short_switch_interval

    serving_threads(int(os.environ.get("RECFRAME_TORCH_THREADS", "1")))  # the event loop needs a core
    short_switch_interval()
    server = ModelServer(source, settings)
    server.on_first_model = freeze_heap  # the loaded heap stays out of full collections
    url = server.start()
    announce(f"recframe serve: listening on {url} ({source.describe()})")
    server.run()
    if server.error:
        raise RecframeError(f"cannot serve {source.describe()}: {server.error}")
    return 0


def main(argv: Sequence[str]) -> int:
    """``recframe serve``: one line on stderr and exit 2 for a user error, before anything listens."""
    from recframe.app import set_offline_env

    set_offline_env()
    logging.basicConfig(format="recframe serve: %(message)s", stream=sys.stderr)
    try:
        args = parse_args(argv)
        settings = ServeSettings(
            host=args.host, port=args.port, workers=args.workers, watch_s=args.watch,
            drain_timeout_s=args.drain_timeout, metrics=not args.no_metrics, max_batch=args.max_batch,
            exclude_seen=not args.include_seen, log_level=args.log_level,
        )  # fmt: skip
        source = ModelSource(args.target, args.warehouse, args.tenant)
        source.resolve()  # a missing run, artifact or champion: one line now, not a server that never gets ready
        return serve(source, settings, announce=lambda line: print(line, flush=True))
    except RecframeError as e:
        print(f"recframe: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2) or 2
    except KeyboardInterrupt:
        return 130
