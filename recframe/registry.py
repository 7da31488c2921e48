"""The model registry: every run whose gates pass becomes a model version; one is each tenant's champion.

The registry is the warehouse table ``model_registry`` (beside the dbt marts, so the champion's
recommendations can be joined to it in SQL), with ``model_registry_log`` recording every move of the
champion (who, when, from which version to which). With ``tracker=mlflow`` each version is also
registered in MLflow's model registry (model ``recframe-<tenant>``) and the champion is the alias
``champion`` there.

A model version is named by the artifact it serves (``<model>-<first 12 hex of the artifact's
checksum digest>``), so registering the same artifact twice is a no-op and the recommendations
table names the exact weights that produced each row.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recframe.interfaces import RecframeError
from recframe.warehouse_writer import MODEL_REGISTRY, REGISTRY_LOG, WarehouseWriter, ensure_tables

log = logging.getLogger("recframe")
MLFLOW_ALIAS = "champion"
PROMOTE_POLICIES = ("first", "always", "never", "if_better")


class RegistryError(RecframeError):
    """A promotion or rollback cannot be done (unknown version, no earlier champion...)."""

    exit_code = 2


def artifact_checksums(model_dir: str | Path) -> dict[str, str]:
    """The artifact's per-file SHA-256 (``checksums.json``)."""
    return json.loads((Path(model_dir) / "checksums.json").read_text())["sha256"]


def model_version(model_dir: str | Path) -> str:
    """``<model name>-<12 hex>``: names the exact artifact (its checksums' digest)."""
    sums = artifact_checksums(model_dir)
    meta = json.loads((Path(model_dir) / "model.json").read_text())
    digest = hashlib.sha256(json.dumps(sums, sort_keys=True).encode()).hexdigest()[:12]
    return f"{meta.get('name', 'model')}-{digest}"


def os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (some containers)
        return "unknown"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class Version:
    """One row of ``model_registry``."""

    tenant: str
    model_version: str
    run_id: str
    model: str
    is_champion: bool
    mlflow_model: str | None = None
    mlflow_version: str | None = None


def _version(writer: WarehouseWriter, tenant: str, version: str) -> Version | None:
    rows = writer.fetch(
        f"select tenant, model_version, run_id, model, is_champion, mlflow_model, mlflow_version "
        f"from {writer.table(MODEL_REGISTRY)} where tenant = ? and model_version = ?",
        [tenant, version],
    )
    return Version(*rows[0]) if rows else None


def champion(writer: WarehouseWriter, tenant: str) -> Version | None:
    """The tenant's champion, or None."""
    ensure_tables(writer)
    rows = writer.fetch(
        f"select tenant, model_version, run_id, model, is_champion, mlflow_model, mlflow_version "
        f"from {writer.table(MODEL_REGISTRY)} where tenant = ? and is_champion",
        [tenant],
    )
    return Version(*rows[0]) if rows else None


def register(
    writer: WarehouseWriter,
    tenant: str,
    run_dir: str | Path,
    model_dir: str | Path,
    metrics: dict[str, Any],
    runinfo: dict[str, Any],
    gates_passed: bool,
    promote: str = "first",
    mlflow: tuple[str, str | None] | None = None,
) -> tuple[Version, bool]:
    """Register the artifact of ``run_dir``; return the version and whether it was new.

    ``promote``: ``first`` makes it the champion when the tenant has none, ``always`` makes it the
    champion, ``never`` leaves the champion alone. ``mlflow``: ``(tracking_uri, mlflow_run_id)`` to
    also register the version in MLflow's model registry (the run id may be None).
    """
    if promote not in PROMOTE_POLICIES:
        raise RegistryError(f"registry.promote must be one of {', '.join(PROMOTE_POLICIES)}, got {promote!r}")
    ensure_tables(writer)
    run_dir = Path(run_dir)
    version = model_version(model_dir)
    existing = _version(writer, tenant, version)
    if existing is None:
        ml_model = ml_version = None
        if mlflow is not None:
            ml_model, ml_version = mlflow_register(mlflow[0], tenant, version, model_dir, mlflow[1], metrics)
        git = runinfo.get("git") or {}
        writer.execute(
            f"insert into {writer.table(MODEL_REGISTRY)} values "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, false, null, null, ?, ?)",
            [
                tenant, version, run_dir.name, str(run_dir.resolve()), str(metrics.get("model", version.split("-")[0])),
                json.dumps(metrics, default=str), bool(gates_passed), runinfo.get("data_fingerprint"),
                runinfo.get("config_hash"), git.get("commit"), json.dumps(runinfo.get("packages", {})),
                json.dumps(artifact_checksums(model_dir)), _now(), ml_model, ml_version,
            ],
        )  # fmt: skip
        existing = _version(writer, tenant, version)
        assert existing is not None
        new = True
    else:
        new = False
    current = champion(writer, tenant)
    # if_better: with no champion the first version is promoted; otherwise the caller runs the gate
    wanted = promote == "always" or (promote in ("first", "if_better") and current is None)
    if wanted and (current is None or current.model_version != version):
        promote_version(writer, tenant, version, action="register", tracking_uri=mlflow[0] if mlflow else None)
    return _version(writer, tenant, version), new  # type: ignore[return-value]


def champion_run_dir(writer: WarehouseWriter, tenant: str) -> Path | None:
    """The run directory the tenant's champion was registered from."""
    rows = writer.fetch(
        f"select run_dir from {writer.table(MODEL_REGISTRY)} where tenant = ? and is_champion", [tenant]
    )
    return Path(rows[0][0]) if rows and rows[0][0] else None


def promote_version(
    writer: WarehouseWriter, tenant: str, version: str, action: str = "promote", tracking_uri: str | None = None
) -> Version:
    """Make ``version`` the tenant's champion (one transaction) and log who did it and when."""
    ensure_tables(writer)
    target = _version(writer, tenant, version)
    if target is None:
        raise RegistryError(f"model version {version!r} is not registered for tenant {tenant!r}")
    current = champion(writer, tenant)
    user, now = os_user(), _now()
    reg, lg = writer.table(MODEL_REGISTRY), writer.table(REGISTRY_LOG)
    with writer.transaction():
        writer.execute(f"update {reg} set is_champion = false where tenant = ? and is_champion", [tenant])
        writer.execute(
            f"update {reg} set is_champion = true, promoted_by = ?, promoted_at = ? "
            "where tenant = ? and model_version = ?",
            [user, now, tenant, version],
        )
        writer.execute(
            f"insert into {lg} values (?, ?, ?, ?, ?, ?)",
            [tenant, action, current.model_version if current else None, version, user, now],
        )
    if tracking_uri and target.mlflow_model and target.mlflow_version:
        mlflow_set_champion(tracking_uri, target.mlflow_model, target.mlflow_version)
    log.info("%s is now the champion of tenant %s (%s by %s)", version, tenant, action, user)
    return _version(writer, tenant, version)  # type: ignore[return-value]


def rollback(writer: WarehouseWriter, tenant: str, tracking_uri: str | None = None) -> tuple[str, str]:
    """Give the champion back to the version it replaced; return ``(from, to)``.

    Rollbacks follow promotions backwards: after promoting A, B, C, two rollbacks give B, then A.
    """
    current = champion(writer, tenant)
    if current is None:
        raise RegistryError(f"tenant {tenant!r} has no champion to roll back")
    rows = writer.fetch(
        f"select from_version from {writer.table(REGISTRY_LOG)} where tenant = ? and to_version = ? "
        "and action in ('promote', 'register', 'gate') order by moved_at desc limit 1",
        [tenant, current.model_version],
    )
    previous = rows[0][0] if rows else None
    if not previous:
        raise RegistryError(
            f"{current.model_version} was the first champion of tenant {tenant!r}: nothing to roll back to"
        )
    promote_version(writer, tenant, previous, action="rollback", tracking_uri=tracking_uri)
    return current.model_version, previous


def history(writer: WarehouseWriter, tenant: str) -> list[tuple]:
    """The champion's moves for ``tenant``, oldest first: (action, from, to, os_user, at)."""
    ensure_tables(writer)
    return writer.fetch(
        f"select action, from_version, to_version, os_user, moved_at from {writer.table(REGISTRY_LOG)} "
        "where tenant = ? order by moved_at",
        [tenant],
    )


# ----------------------------------------------------------------------------------------- MLflow
def _mlflow_client(tracking_uri: str) -> Any:
    import os

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if tracking_uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def mlflow_register(
    tracking_uri: str, tenant: str, version: str, model_dir: str | Path, run_id: str | None, metrics: dict[str, Any]
) -> tuple[str, str]:
    """Register the artifact as a version of MLflow model ``recframe-<tenant>``; return (name, version)."""
    from recframe.tracker.values import safe_name

    client = _mlflow_client(tracking_uri)
    name = f"recframe-{tenant}"
    if not client.search_registered_models(f"name='{name}'"):
        client.create_registered_model(name, description="recframe models; alias 'champion' is served")
    source = Path(model_dir).resolve().as_uri()
    if run_id:
        client.log_artifacts(run_id, str(model_dir), artifact_path="model")
        source = f"{client.get_run(run_id).info.artifact_uri}/model"
    tags = {"recframe.model_version": version}
    for key in ("hr@20", "mrr@20", "ndcg@20"):
        if isinstance(metrics.get(key), (int, float)):
            tags[safe_name(f"recframe.{key}")] = str(metrics[key])
    mv = client.create_model_version(name, source, run_id=run_id, tags=tags)
    return name, str(mv.version)


def mlflow_set_champion(tracking_uri: str, name: str, version: str) -> None:
    """Point MLflow's ``champion`` alias of model ``name`` at ``version``."""
    try:
        _mlflow_client(tracking_uri).set_registered_model_alias(name, MLFLOW_ALIAS, version)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RegistryError(
            f"the warehouse champion moved, but MLflow at {tracking_uri} refused the alias: {first}"
        ) from None
