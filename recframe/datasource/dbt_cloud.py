"""Run the dbt build as a dbt Cloud job (``datasource.dbt.runner=cloud``) through the REST API v2.

Teams that already schedule dbt in dbt Cloud keep the build there: recframe ingests the raw events,
triggers the job with ``POST /api/v2/accounts/{account_id}/jobs/{job_id}/run/`` (its ``cause`` names
the recframe run, so a dbt Cloud run can be traced back to a recframe run directory), polls
``GET /api/v2/accounts/{account_id}/runs/{run_id}/`` until the run is complete (status 10 success,
20 error, 30 cancelled) or ``timeout_s`` passes, and then reads the marts the job built.

Only the standard library's HTTP client is used, so the cloud runner adds no dependency. The token
travels in the ``Authorization: Token ...`` header and nowhere else: it is not part of ``repr``, of
errors, or of the run summary returned to the pipeline. Every failure is a one-line
:class:`~recframe.interfaces.RecframeError` naming the dbt Cloud run (id and link) when there is one.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recframe import atomic
from recframe import validation as v
from recframe.interfaces import ConfigError, DataError, RecframeError

#: dbt Cloud run status codes (API v2 ``data.status``).
QUEUED, STARTING, RUNNING, SUCCESS, ERROR, CANCELLED = 1, 2, 3, 10, 20, 30
STATUS_NAMES = {QUEUED: "queued", STARTING: "starting", RUNNING: "running", SUCCESS: "success", ERROR: "error",
                CANCELLED: "cancelled"}  # fmt: skip
DEFAULT_BASE_URL = "https://cloud.getdbt.com"


@dataclass
class DbtCloudJob:
    """One dbt Cloud job and how to run it.

    Args:
        base_url: the dbt Cloud host (``https://cloud.getdbt.com``, a regional or single-tenant URL).
        account_id, job_id: numeric ids from the job's URL.
        token: a service token with job-run permission (keep it in ``DBT_CLOUD_API_TOKEN``).
        timeout_s: give up (one-line error naming the run) when the run is not complete by then.
        poll_s: seconds between status requests.
        request_timeout_s: timeout of each HTTP request.
        steps_override: optional list of dbt commands replacing the job's steps for this run.
        artifacts: download the run's ``manifest.json`` (for ``lineage.json``) when the job ends.
    """

    base_url: str
    account_id: int
    job_id: int
    token: str
    timeout_s: float = 3600.0
    poll_s: float = 10.0
    request_timeout_s: float = 30.0
    steps_override: list[str] | None = None
    artifacts: bool = True

    def __repr__(self) -> str:  # the token never shows
        return f"DbtCloudJob(base_url={self.base_url!r}, account_id={self.account_id}, job_id={self.job_id})"

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], key: str = "datasource.dbt.cloud") -> DbtCloudJob:
        """Validate the ``datasource.dbt.cloud`` block; missing ids or token are config errors (exit 2)."""
        cfg = dict(cfg)
        known = {"base_url", "account_id", "job_id", "token", "timeout_s", "poll_s", "request_timeout_s",
                 "steps_override", "artifacts"}  # fmt: skip
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ConfigError(f"{key}.{unknown[0]}", cfg[unknown[0]], f"unknown key; known: {', '.join(sorted(known))}")
        base_url = cfg.get("base_url") or DEFAULT_BASE_URL
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"{key}.base_url", base_url, "must be an http(s) URL")
        ids = {}
        for name, env in (("account_id", "DBT_CLOUD_ACCOUNT_ID"), ("job_id", "DBT_CLOUD_JOB_ID")):
            raw = cfg.get(name)
            if raw in (None, ""):
                raise ConfigError(f"{key}.{name}", raw, f"is required with datasource.dbt.runner=cloud: set {env}")
            try:
                ids[name] = v.integer(f"{key}.{name}", int(str(raw)), 1)
            except ValueError:
                raise ConfigError(f"{key}.{name}", raw, "must be a positive integer") from None
        token = cfg.get("token")
        if not token:
            raise ConfigError(
                f"{key}.token", "<missing>", "is required with datasource.dbt.runner=cloud: set DBT_CLOUD_API_TOKEN"
            )
        steps = cfg.get("steps_override")
        if steps is not None:
            if isinstance(steps, str) or not all(isinstance(s, str) and s.startswith("dbt ") for s in steps):
                raise ConfigError(f"{key}.steps_override", steps, "must be a list of dbt commands ('dbt build ...')")
            steps = list(steps)
        return cls(
            base_url=base_url.rstrip("/"),
            account_id=ids["account_id"],
            job_id=ids["job_id"],
            token=str(token),
            timeout_s=v.positive(f"{key}.timeout_s", cfg.get("timeout_s", 3600)),
            poll_s=v.positive(f"{key}.poll_s", cfg.get("poll_s", 10)),
            request_timeout_s=v.positive(f"{key}.request_timeout_s", cfg.get("request_timeout_s", 30)),
            steps_override=steps,
            artifacts=v.boolean(f"{key}.artifacts", cfg.get("artifacts", True)),
        )

    # ------------------------------------------------------------------------------------------------
    def _url(self, path: str) -> str:
        return f"{self.base_url}/api/v2/accounts/{self.account_id}/{path}"

    def _request(self, method: str, path: str, body: Mapping[str, Any] | None = None, what: str = "") -> Any:
        """One API call; returns the decoded JSON (``data`` for API objects) or raises a one-line error."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self._url(path), data=data, method=method)
        req.add_header("Authorization", f"Token {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.request_timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            detail = _api_message(e)
            if e.code in (401, 403):
                raise RecframeError(
                    f"dbt Cloud at {self.base_url} refused the token ({e.code}{': ' + detail if detail else ''}) "
                    f"while {what}: check DBT_CLOUD_API_TOKEN and its permissions on account {self.account_id}"
                ) from None
            raise RecframeError(
                f"dbt Cloud at {self.base_url} answered {e.code} while {what}{': ' + detail if detail else ''}"
            ) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise RecframeError(f"cannot reach dbt Cloud at {self.base_url} while {what}: {reason}") from None
        return raw

    def _json(self, method: str, path: str, body: Mapping[str, Any] | None = None, what: str = "") -> Any:
        raw = self._request(method, path, body, what)
        try:
            payload = json.loads(raw)
        except ValueError:
            raise RecframeError(f"dbt Cloud at {self.base_url} sent a non-JSON answer while {what}") from None
        return payload.get("data") if isinstance(payload, dict) else None

    def check(self) -> None:
        """Fail fast: the API answers and accepts the token for this job (``GET .../jobs/{job_id}/``)."""
        job = self._json("GET", f"jobs/{self.job_id}/", what=f"looking up job {self.job_id}")
        if not isinstance(job, dict):
            raise RecframeError(f"dbt Cloud job {self.job_id} not found in account {self.account_id}")

    def trigger(self, cause: str) -> dict[str, Any]:
        """Start one run of the job; returns the run object (``id``, ``status``, ``href``)."""
        body: dict[str, Any] = {"cause": cause[:255]}
        if self.steps_override:
            body["steps_override"] = self.steps_override
        run = self._json("POST", f"jobs/{self.job_id}/run/", body, what=f"triggering job {self.job_id}")
        if not isinstance(run, dict) or "id" not in run:
            raise RecframeError(f"dbt Cloud did not return a run when triggering job {self.job_id}")
        return run

    def wait(
        self,
        run: Mapping[str, Any],
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> dict[str, Any]:
        """Poll the run until it completes; success returns the run, anything else raises one line."""
        run_id = run["id"]
        deadline = clock() + self.timeout_s
        current = dict(run)
        while True:
            status = int(current.get("status") or 0)
            if status == SUCCESS:
                return current
            if status in (ERROR, CANCELLED):
                name = STATUS_NAMES[status]
                msg = " ".join(str(current.get("status_message") or "").split())
                raise DataError(
                    f"dbt Cloud run {run_id} of job {self.job_id} ended with {name}"
                    f"{': ' + msg[:200] if msg else ''} ({_href(current)})"
                )
            if clock() >= deadline:
                raise DataError(
                    f"dbt Cloud run {run_id} of job {self.job_id} still {STATUS_NAMES.get(status, status)} after "
                    f"{self.timeout_s:g} s ({_href(current)}); raise datasource.dbt.cloud.timeout_s or check the run"
                )
            sleep(min(self.poll_s, max(0.0, deadline - clock())))
            fresh = self._json("GET", f"runs/{run_id}/", what=f"polling run {run_id}")
            if isinstance(fresh, dict):
                current = fresh

    def run(self, cause: str, target_dir: Path | None = None) -> dict[str, Any]:
        """Trigger, wait for success, and fetch ``manifest.json`` into ``target_dir``; return a summary."""
        t0 = time.monotonic()
        run = self.wait(self.trigger(cause))
        summary = {
            "run_id": run["id"],
            "job_id": self.job_id,
            "status": STATUS_NAMES.get(int(run.get("status") or 0), run.get("status")),
            "href": run.get("href"),
            "cause": cause,
            "seconds": round(time.monotonic() - t0, 3),
        }
        if self.artifacts and target_dir is not None:
            try:
                raw = self._request("GET", f"runs/{run['id']}/artifacts/manifest.json", what="fetching manifest.json")
                target_dir = Path(target_dir)
                target_dir.mkdir(parents=True, exist_ok=True)
                json.loads(raw)  # only keep a valid manifest
                atomic.write_bytes(target_dir / "manifest.json", raw)
                summary["manifest"] = True
            except (RecframeError, ValueError):
                summary["manifest"] = False  # lineage is a nicety: the marts are what the run needs
        return summary


def _href(run: Mapping[str, Any]) -> str:
    return str(run.get("href") or f"run {run.get('id')}")


def _api_message(err: urllib.error.HTTPError) -> str:
    """dbt Cloud's ``status.user_message`` from an error body, if any, on one line."""
    try:
        body = json.loads(err.read() or b"{}")
        msg = (body.get("status") or {}).get("user_message") or ""
    except Exception:
        msg = ""
    return " ".join(str(msg).split())[:200]
