"""A local HTTP server that answers like the dbt Cloud API v2, for the cloud runner's tests.

It serves the four calls recframe makes (job lookup, trigger, run status, run artifact) on
127.0.0.1 only, with the response shapes of the real API (``{"status": {...}, "data": {...}}``) and its
run status codes (1 queued, 3 running, 10 success, 20 error, 30 cancelled). Each job has a scripted
outcome; a job may also carry a ``work`` callable that runs in a thread while the run is "running"
(the end-to-end test builds the marts there with the local dbt project), its exception turning the
run into an error. Every request is recorded so tests can check headers and bodies.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

STATUS_CODES = {"queued": 1, "starting": 2, "running": 3, "success": 10, "error": 20, "cancelled": 30}


@dataclass
class FakeJob:
    """How a job's runs behave: the final outcome, after how many status polls, and optional work."""

    outcome: str = "success"  # success | error | cancelled | hang (never completes)
    polls: int = 2  # status requests answered "running" before the outcome
    work: Callable[[dict[str, Any]], None] | None = None  # runs in a thread; completes the run when done
    manifest: bytes | Path | None = None  # served as the run's manifest.json artifact (a Path is read then)


@dataclass
class _Run:
    id: int
    job_id: int
    cause: str
    job: FakeJob
    polls: int = 0
    work_done: threading.Event = field(default_factory=threading.Event)
    work_error: str | None = None


class FakeDbtCloud:
    """``with FakeDbtCloud(token, jobs) as api: api.base_url`` -> a dbt Cloud API on 127.0.0.1."""

    def __init__(self, token: str, jobs: dict[int, FakeJob], account_id: int = 7) -> None:
        self.token, self.jobs, self.account_id = token, jobs, account_id
        self.requests: list[dict[str, Any]] = []
        self.runs: dict[int, _Run] = {}
        self._next_id = 1000
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeDbtCloud:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        for run in self.runs.values():
            run.work_done.wait(timeout=120)

    # ------------------------------------------------------------------------------------------------
    def _send(self, h: BaseHTTPRequestHandler, code: int, data: Any = None, message: str | None = None) -> None:
        body = {
            "status": {"code": code, "is_success": code < 400, "user_message": message, "developer_message": None},
            "data": data,
        }
        raw = json.dumps(body).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(raw)))
        h.end_headers()
        h.wfile.write(raw)

    def _run_object(self, run: _Run, status: str) -> dict[str, Any]:
        code = STATUS_CODES[status]
        return {
            "id": run.id,
            "account_id": self.account_id,
            "job_definition_id": run.job_id,
            "trigger": {"cause": run.cause},
            "status": code,
            "status_humanized": status.capitalize(),
            "status_message": run.work_error or (f"Job {status}" if code in (20, 30) else None),
            "is_complete": code >= 10,
            "is_success": code == 10,
            "is_error": code == 20,
            "is_cancelled": code == 30,
            "href": f"{self.base_url}/deploy/{self.account_id}/projects/1/runs/{run.id}/",
        }

    def _status(self, run: _Run) -> str:
        if run.job.work is not None and not run.work_done.is_set():
            return "running"
        if run.work_error:
            return "error"
        if run.job.outcome == "hang" or run.polls <= run.job.polls:
            return "running"
        return run.job.outcome

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = json.loads(h.rfile.read(length) or b"{}") if length else None
        self.requests.append(
            {"method": method, "path": h.path, "authorization": h.headers.get("Authorization"), "body": body}
        )
        if h.headers.get("Authorization") != f"Token {self.token}":
            return self._send(h, 401, None, "Invalid token.")
        prefix = f"/api/v2/accounts/{self.account_id}/"
        if not h.path.startswith(prefix):
            return self._send(h, 404, None, "Account not found.")
        path = h.path[len(prefix) :]
        if m := re.fullmatch(r"jobs/(\d+)/", path):
            if method != "GET" or int(m[1]) not in self.jobs:
                return self._send(h, 404, None, "Job not found.")
            return self._send(h, 200, {"id": int(m[1]), "account_id": self.account_id, "name": "recframe build"})
        if m := re.fullmatch(r"jobs/(\d+)/run/", path):
            job = self.jobs.get(int(m[1]))
            if method != "POST" or job is None:
                return self._send(h, 404, None, "Job not found.")
            if not isinstance(body, dict) or not body.get("cause"):
                return self._send(h, 400, None, "cause is required.")
            with self._lock:
                self._next_id += 1
                run = _Run(self._next_id, int(m[1]), body["cause"], job)
                self.runs[run.id] = run
            if job.work is not None:
                threading.Thread(target=self._work, args=(run, body), daemon=True).start()
            else:
                run.work_done.set()
            return self._send(h, 200, self._run_object(run, "queued"))
        if m := re.fullmatch(r"runs/(\d+)/", path):
            run = self.runs.get(int(m[1]))
            if run is None:
                return self._send(h, 404, None, "Run not found.")
            run.polls += 1
            return self._send(h, 200, self._run_object(run, self._status(run)))
        if m := re.fullmatch(r"runs/(\d+)/artifacts/manifest\.json", path):
            run = self.runs.get(int(m[1]))
            manifest = run.job.manifest if run is not None else None
            if isinstance(manifest, Path):
                manifest = manifest.read_bytes() if manifest.exists() else None
            if manifest is None:
                return self._send(h, 404, None, "Artifact not found.")
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(manifest)))
            h.end_headers()
            h.wfile.write(manifest)
            return None
        return self._send(h, 404, None, "Not found.")

    def _work(self, run: _Run, body: dict[str, Any]) -> None:
        try:
            assert run.job.work is not None
            run.job.work(body)
        except Exception as e:  # a failed job: the run reports error with the message
            run.work_error = " ".join(str(e).split())[:300] or type(e).__name__
        finally:
            run.work_done.set()
