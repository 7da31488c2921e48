"""Run recframe's dbt project in-process and turn its outcome into recframe results or errors.

dbt runs through :class:`dbt.cli.main.dbtRunner` (no subprocess, no shell): ``dbt build`` builds the
models *and* runs their tests, and any failing test becomes a :class:`~recframe.interfaces.DataError`
whose one-line message names the failing node and repeats dbt's message, so the pipeline stops
before training on bad data.

The packaged project directory is treated as read-only: it is copied into the run's work dir (the
run then carries the exact SQL it was built with) and dbt's ``target/`` and ``logs/`` go there too.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from recframe import atomic
from recframe.interfaces import DataError, RecframeError
from recframe.shipped import dbt_project_dir

# dbt reads these at import/invocation time; a library run must not phone home.
_DBT_ENV = {"DO_NOT_TRACK": "true", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}


def packaged_project_dir() -> Path:
    """The dbt project shipped with recframe (:func:`recframe.shipped.dbt_project_dir`)."""
    return dbt_project_dir()


def prepare_project(state_dir: Path, project_dir: Path | None = None) -> Path:
    """Sync the dbt project into ``state_dir/project`` and return that path.

    dbt only re-parses what changed when the project path, the files and the target path stay the
    same between runs (partial parsing: ~0.4 s instead of ~5 s of CPU). So the copy lives next to
    the warehouse rather than in each run directory, and files are rewritten only when their bytes
    differ. The packaged project itself is never written.
    """
    src = Path(project_dir) if project_dir else packaged_project_dir()
    if not (src / "dbt_project.yml").exists():
        raise RecframeError(f"no dbt_project.yml in {src}")
    dst = Path(state_dir) / "project"
    wanted: dict[Path, bytes] = {}
    for f in src.rglob("*"):
        rel = f.relative_to(src)
        if f.is_file() and not _ignored(rel):
            wanted[rel] = f.read_bytes()
    for rel, data in wanted.items():
        target = dst / rel
        if not target.exists() or target.read_bytes() != data:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    if dst.exists():
        for f in sorted(dst.rglob("*"), reverse=True):
            rel = f.relative_to(dst)
            if f.is_file() and rel not in wanted:
                f.unlink()
            elif f.is_dir() and not any(f.iterdir()):
                f.rmdir()
    return dst


def _ignored(rel: Path) -> bool:
    parts = rel.parts
    return (
        parts[0] in ("target", "logs", "dbt_packages")
        or "__pycache__" in parts
        or rel.suffix in (".py", ".pyc")
        or rel.name.startswith(".")
    )


def collect_artifacts(target_dir: Path, work_dir: Path) -> None:
    """Copy the run's manifest and results into the run directory (the target dir is reused)."""
    out = Path(work_dir) / "target"
    out.mkdir(parents=True, exist_ok=True)
    for name in ("manifest.json", "run_results.json", "catalog.json"):
        f = Path(target_dir) / name
        if f.exists():
            shutil.copy2(f, out / name)


def _failure_line(results: Any) -> str | None:
    """One line naming the first failed/errored node and dbt's message, or None if all passed."""
    for r in getattr(results, "results", None) or []:
        status = str(getattr(r, "status", "")).lower()
        if status in ("fail", "error", "runtimeerror"):
            node = getattr(r, "node", None)
            kind = getattr(node, "resource_type", "node")
            kind = getattr(kind, "value", kind)
            name = getattr(node, "name", "?")
            msg = " ".join(str(getattr(r, "message", "") or status).split())
            return f"dbt {kind} {name} {status}: {msg}"
    return None


def import_dbt() -> Any:
    """dbt's ``dbtRunner``, imported with its telemetry off (the variables must be set before the import)."""
    for k, v in _DBT_ENV.items():
        os.environ.setdefault(k, v)
    try:
        from dbt.cli.main import dbtRunner
    except ImportError as e:  # pragma: no cover - dbt-core is a core dependency
        raise RecframeError(f"dbt is not installed ({e}): pip install recframe") from None
    return dbtRunner


def run_dbt(
    args: Sequence[str],
    project_dir: Path,
    work_dir: Path,
    vars: Mapping[str, Any] | None = None,
    target: str | None = None,
    target_dir: Path | None = None,
    manifest: Any = None,
    env: Mapping[str, str | None] | None = None,
) -> Any:
    """Invoke ``dbt <args>`` in-process; raise :class:`DataError` naming the failure if anything fails.

    ``vars`` are passed as ``--vars`` (JSON), so every setting reaches the SQL through ``var()``.
    Logs go to ``work_dir/logs``; dbt's target dir is ``target_dir`` (default ``work_dir/target``):
    pass a stable one to keep partial parsing, then :func:`collect_artifacts` into the run.
    ``manifest`` is a ``Manifest`` returned by ``dbt parse`` with the same project, vars and target:
    dbt then skips its own parse (``dbtRunner(manifest=...)``, dbt's documented way to reuse one).
    ``env`` is set in the process environment for the invocation only (``env_var()`` in the models;
    a None value unsets its variable): values that change every build go there, since a changed var
    makes dbt re-parse everything.

    With a ``manifest``, ``build`` and ``run`` write their ``manifest.json`` and ``run_results.json``
    here, not in dbt: on a thread, while the DuckDB database closes (its final checkpoint releases
    the GIL), instead of one after the other (at 50M events about half a second each, of a
    seven-second incremental build).
    """
    dbtRunner = import_dbt()  # noqa: N806 - dbt's class
    work_dir = Path(work_dir)
    cli = [
        *args,
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(project_dir),
        "--target-path",
        str(target_dir or work_dir / "target"),
        "--log-path",
        str(work_dir / "logs"),
        "--vars",
        json.dumps(dict(vars or {})),
        "--quiet",
        "--no-use-colors",
    ]
    if target:
        cli += ["--target", target]
    own_artifacts = manifest is not None and args[:1] in (["build"], ["run"])
    if own_artifacts:
        cli.append("--no-write-json")
    res = None
    try:
        with environment(env or {}):
            res = dbtRunner(manifest=manifest).invoke(cli)
    finally:
        writer = None
        if own_artifacts and res is not None:
            writer = ArtifactWriter(manifest, res.result, Path(target_dir or work_dir / "target"))
            writer.start()
        release_duckdb()
        if writer is not None:
            writer.join()
    if res.exception is not None:
        msg = " ".join(str(res.exception).split())
        raise DataError(f"dbt {args[0]} failed: {msg}")
    line = _failure_line(res.result)
    if line is not None or not res.success:
        raise DataError(line or f"dbt {args[0]} failed (see {work_dir / 'logs' / 'dbt.log'})")
    return res.result


class ArtifactWriter(threading.Thread):
    """Writes what ``dbt build --write-json`` would: ``manifest.json`` (with ``semantic_manifest.json``)
    and ``run_results.json``, through dbt's own writers. :meth:`join` re-raises a failed write."""

    def __init__(self, manifest: Any, result: Any, target_dir: Path) -> None:
        super().__init__(name="recframe-dbt-artifacts", daemon=True)
        self.manifest, self.result, self.target_dir = manifest, result, target_dir
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            from dbt.parser.manifest import write_manifest

            self.target_dir.mkdir(parents=True, exist_ok=True)
            write_manifest(self.manifest, str(self.target_dir))
            if hasattr(self.result, "write"):
                self.result.write(str(self.target_dir / "run_results.json"))
        except BaseException as e:
            self.error = e

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self.error is not None:
            raise RecframeError(f"writing dbt's artifacts to {self.target_dir} failed: {self.error}") from None


@contextlib.contextmanager
def environment(env: Mapping[str, Any]) -> Any:
    """Set ``env`` in ``os.environ`` for the block (a None value unsets its variable), then restore
    what was there: how credentials and load ids reach dbt without being written anywhere."""
    saved = {k: os.environ.get(k) for k in env}
    try:
        for k, val in env.items():
            if val is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = str(val)
        yield
    finally:
        for k, old in saved.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old


def release_duckdb() -> None:
    """Close the DuckDB database dbt-duckdb keeps open for the life of the process.

    dbt-duckdb caches one database handle per process (a class attribute); left open it locks the
    warehouse file against other processes, and against this process opening it with another
    configuration (e.g. read-only). There is no public hook, so this reaches into the connection
    manager defensively: if its internals change, the worst case is the old behaviour.
    """
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:
        return
    lock = getattr(DuckDBConnectionManager, "_LOCK", None)
    if lock is None:
        return
    with lock:
        env = getattr(DuckDBConnectionManager, "_ENV", None)
        if env is not None:
            with contextlib.suppress(Exception):  # best effort, see docstring
                env.close()
            DuckDBConnectionManager._ENV = None


def write_lineage(target_dir: Path, out: Path) -> dict[str, Any]:
    """Save the manifest's lineage (nodes and edges of models, sources and tests) as ``out``."""
    manifest_path = Path(target_dir) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, str]] = []
    for uid, node in {**manifest.get("nodes", {}), **manifest.get("sources", {})}.items():
        rtype = node.get("resource_type")
        if rtype not in ("model", "source", "test", "seed", "snapshot"):
            continue
        nodes.append(
            {
                "id": uid,
                "type": rtype,
                "name": node.get("name"),
                "materialized": (node.get("config") or {}).get("materialized"),
                "description": node.get("description", ""),
            }
        )
        for parent in (node.get("depends_on") or {}).get("nodes", []):
            edges.append({"from": parent, "to": uid})
    lineage = {"nodes": sorted(nodes, key=lambda n: n["id"]), "edges": edges}
    atomic.write_json(out, lineage, default=None)
    return lineage
