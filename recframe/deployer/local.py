"""``deployer=local``: the artifact behind a real HTTP server on this machine (uvicorn, 127.0.0.1).

With ``workers: 1`` (the default) uvicorn runs on a background thread of this process, on a socket
bound here first, so ``port: 0`` yields a free port known before the server starts and nothing races
for it. With ``workers > 1`` it runs as ``uvicorn --workers N`` in a subprocess (the model is loaded
once per worker, each a separate process), the way the Docker image runs it.

``deploy`` returns as soon as ``/ping`` answers and the smoke test has run; ``wait`` blocks until
Ctrl-C (``keep_alive``) and shuts down gracefully; ``teardown`` is idempotent.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recframe import validation as v
from recframe.deployer.smoke import failed_checks, http_get_status, http_post, run_smoke
from recframe.interfaces import ConfigError, Deployer, DeployError, Deployment

log = logging.getLogger(__name__)


class LocalDeployer(Deployer):
    """Serve a model artifact on ``http://HOST:PORT`` with the recframe serving contract."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        keep_alive: bool = False,
        force: bool = False,
        smoke_k: int = 10,
        require_smoke: bool = True,
        workers: int = 1,
        max_batch: int = 256,
        max_body_bytes: int = 1 << 20,
        default_k: int = 10,
        max_k: int = 1000,
        max_session_len: int = 1000,
        max_sessions: int = 1000,
        exclude_seen: bool = True,
        torch_threads: int | None = 1,
        startup_timeout_s: float = 60.0,
        log_level: str = "warning",
        fast_path: bool = True,
        metrics: bool = True,
    ) -> None:
        from recframe.deployer.predictor import ServingLimits

        if not isinstance(host, str) or not host:
            raise ConfigError("deployer.host", host, "must be a host name or address such as 127.0.0.1")
        self.host = host
        self.port = v.integer("deployer.port", port, 0, 65535)
        self.keep_alive = v.boolean("deployer.keep_alive", keep_alive)
        self.force = v.boolean("deployer.force", force)
        self.smoke_k = v.integer("deployer.smoke_k", smoke_k, 1, max_k)
        self.require_smoke = v.boolean("deployer.require_smoke", require_smoke)
        self.workers = v.integer("deployer.workers", workers, 1, 64)
        self.max_batch = v.integer("deployer.max_batch", max_batch, 1)
        self.max_body_bytes = v.integer("deployer.max_body_bytes", max_body_bytes, 1024)
        self.limits = ServingLimits(
            default_k=default_k,
            max_k=max_k,
            max_session_len=max_session_len,
            max_sessions=max_sessions,
            exclude_seen=exclude_seen,
        )
        self.torch_threads = None if torch_threads is None else v.integer("deployer.torch_threads", torch_threads, 1)
        self.startup_timeout_s = v.positive("deployer.startup_timeout_s", startup_timeout_s)
        self.log_level = v.choice("deployer.log_level", log_level, ["critical", "error", "warning", "info", "debug"])
        self.fast_path = v.boolean("deployer.fast_path", fast_path)
        self.metrics = v.boolean("deployer.metrics", metrics)
        self._metrics_dir: str | None = None
        self.url: str | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._app: Any = None
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._undo: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ lifecycle

    def deploy(self, artifact_dir: Path, run_dir: Path) -> Deployment:
        """Load the artifact, start serving, wait for ``/ping``, smoke-test the contract."""
        from recframe.deployer.smoke import example_session

        artifact_dir = Path(artifact_dir)
        if self._server is not None or self._proc is not None:
            raise DeployError(f"already serving at {self.url}; call teardown() before deploying again")
        if self.workers == 1:
            info = self._start_thread(artifact_dir)
        else:
            info = self._start_subprocess(artifact_dir, Path(run_dir))
        self._wait_ready()
        smoke = run_smoke(http_post(f"{self.url}/invocations"), example_session(artifact_dir), self.smoke_k)
        if not smoke["passed"] and self.require_smoke:
            self.teardown()
            raise DeployError(f"local endpoint failed its smoke test ({failed_checks(smoke)})")
        details = {"deployer": "local", "host": self.host, "port": self._port, "workers": self.workers, **info}
        details["docs"] = f"{self.url}/docs"
        return Deployment(url=self.url or "", smoke=smoke, details=details)

    def _bind(self) -> socket.socket:
        return listen(self.host, self.port, DeployError)

    def _start_thread(self, artifact_dir: Path) -> dict[str, Any]:
        import uvicorn

        from recframe.deployer.predictor import Predictor
        from recframe.deployer.serving import create_app
        from recframe.deployer.serving_process import freeze_heap, serving_threads, short_switch_interval

        # Process-wide settings (serving_process); teardown undoes them, so a pipeline or test
        # session is left as it was.
        if self.torch_threads:
            self._undo.append(serving_threads(self.torch_threads))
        self._undo.append(short_switch_interval())
        predictor = Predictor.from_artifact(artifact_dir, self.limits)
        self._app = create_app(
            predictor,
            max_body_bytes=self.max_body_bytes,
            max_batch=self.max_batch,
            fast_path=self.fast_path,
            metrics=self.metrics,
        )
        self._undo.append(freeze_heap())
        self._sock = self._bind()
        self._port = self._sock.getsockname()[1]
        self.url = endpoint_url(self.host, self._port)
        config = server_config(self._app, self.log_level, drain_timeout_s=5)
        self._server = uvicorn.Server(config)
        sock = self._sock
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="recframe-serve", daemon=True
        )
        self._thread.start()
        return {"model": predictor.model_name, "n_items": predictor.n_items, "pid": os.getpid()}

    def _start_subprocess(self, artifact_dir: Path, run_dir: Path) -> dict[str, Any]:
        # uvicorn binds in its parent process and hands the socket to the workers; a port picked
        # here and released can in theory be taken meanwhile, which uvicorn then reports at start.
        if self.port == 0:
            probe = self._bind()
            self._port = probe.getsockname()[1]
            probe.close()
        else:
            self._port = self.port
        self.url = endpoint_url(self.host, self._port)
        env = dict(os.environ)
        env.update(
            RECFRAME_ARTIFACT=str(artifact_dir.resolve()),
            RECFRAME_DEFAULT_K=str(self.limits.default_k),
            RECFRAME_MAX_K=str(self.limits.max_k),
            RECFRAME_MAX_SESSION_LEN=str(self.limits.max_session_len),
            RECFRAME_MAX_SESSIONS=str(self.limits.max_sessions),
            RECFRAME_EXCLUDE_SEEN=str(self.limits.exclude_seen).lower(),
            RECFRAME_MAX_BODY_BYTES=str(self.max_body_bytes),
            RECFRAME_MAX_BATCH=str(self.max_batch),
            RECFRAME_METRICS=str(self.metrics).lower(),
        )
        if self.metrics and not env.get("PROMETHEUS_MULTIPROC_DIR"):
            # the workers write their metrics here and a scrape sums them (removed by teardown)
            self._metrics_dir = tempfile.mkdtemp(prefix="recframe-metrics-")
            env["PROMETHEUS_MULTIPROC_DIR"] = self._metrics_dir
        if self.torch_threads:
            env["RECFRAME_TORCH_THREADS"] = str(self.torch_threads)
        cmd = [
            sys.executable, "-m", "uvicorn", "recframe.deployer.serving:app_from_env", "--factory",
            "--host", self.host, "--port", str(self._port), "--workers", str(self.workers),
            "--lifespan", "off", "--no-access-log", "--log-level", self.log_level,
            "--timeout-graceful-shutdown", "5", "--no-server-header", "--no-date-header", "--no-proxy-headers",
        ]  # fmt: skip
        run_dir.mkdir(parents=True, exist_ok=True)
        self._log_path = run_dir / "serve.log"
        self._log_file = self._log_path.open("ab")
        self._proc = subprocess.Popen(cmd, env=env, stdout=self._log_file, stderr=subprocess.STDOUT)
        return {"pid": self._proc.pid, "log": str(self._log_path)}

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._thread is not None and not self._thread.is_alive():
                self.teardown()
                raise DeployError("local endpoint stopped during startup (see the uvicorn log above)")
            if self._proc is not None and self._proc.poll() is not None:
                code = self._proc.returncode
                self.teardown()
                raise DeployError(f"local endpoint exited with code {code} during startup; see {self._log_path}")
            if http_get_status(f"{self.url}/ping") == 200:
                return
            time.sleep(0.05)
        self.teardown()
        raise DeployError(f"local endpoint did not answer {self.url}/ping within {self.startup_timeout_s:g} s")

    def wait(self) -> None:
        """Serve until Ctrl-C (or until the server stops), then shut down gracefully."""
        try:
            while True:
                thread, proc = self._thread, self._proc  # teardown from another thread clears them
                if thread is not None:
                    thread.join(0.5)
                    if not thread.is_alive():
                        break
                elif proc is not None:
                    try:
                        proc.wait(0.5)
                        break
                    except subprocess.TimeoutExpired:
                        continue
                else:
                    break
        except KeyboardInterrupt:
            log.info("stopping the local endpoint")
        finally:
            self.teardown()

    def teardown(self) -> None:
        """Stop serving (graceful: in-flight requests finish); safe to call any number of times."""
        with self._lock:
            server, thread, sock, app, proc = self._server, self._thread, self._sock, self._app, self._proc
            self._server = self._thread = self._sock = self._app = self._proc = None
        if server is not None:
            server.should_exit = True
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)
            if thread.is_alive():
                server.force_exit = True
                thread.join(5)
        if app is not None:
            app.close()
        while self._undo:
            self._undo.pop()()
        if sock is not None:
            sock.close()
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()  # SIGTERM: uvicorn finishes in-flight requests, then exits
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            self._log_file.close()
        if self._metrics_dir is not None:
            shutil.rmtree(self._metrics_dir, ignore_errors=True)
            self._metrics_dir = None


def listen(host: str, port: int, error: Callable[[str], Exception]) -> socket.socket:
    """A listening socket on ``host:port`` (``port`` 0: any free port), bound before the server
    starts so the URL is known at once; a port that cannot be bound raises ``error(message)``."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise error(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def server_config(app: Any, log_level: str, drain_timeout_s: float, **extra: Any) -> Any:
    """The uvicorn settings of every recframe endpoint: no lifespan or access log, 30 s keep-alive,
    in-flight requests drained for ``drain_timeout_s`` on shutdown; ``extra`` adds uvicorn keywords.
    No proxy-header rewriting: nothing reads the client address, and it cost a header scan per request."""
    import uvicorn

    return uvicorn.Config(
        app,
        lifespan="off",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=drain_timeout_s,
        timeout_keep_alive=30,
        server_header=False,  # two headers fewer for h11 to validate on every response
        date_header=False,
        proxy_headers=False,
        **extra,
    )


def endpoint_url(host: str, port: int) -> str:
    """The URL clients on this machine use: a wildcard bind is reached through 127.0.0.1."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"
