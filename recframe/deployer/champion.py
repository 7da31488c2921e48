"""Which run a tenant serves: its champion in the warehouse's ``model_registry`` table.

``recframe serve champion`` needs exactly one thing from the model registry, and this module is
that one seam: :func:`resolve_champion` returns the champion's run directory, or raises
:class:`ChampionError` with one line saying what is missing. It reads the registry table itself
(columns ``tenant``, ``is_champion``, ``run_dir``, ``model_version``) from a DuckDB file, opened
read-only under the warehouse's advisory lock so it takes turns with a concurrent promotion.

:func:`artifact_version` names an artifact the way the registry does (``<model>-<12 hex digits of
the digest of its checksums>``), so ``/ping`` and ``/metrics`` report the version that
``recframe promote`` and the ``recommendations`` table name.
"""

from __future__ import annotations

from pathlib import Path

from recframe.interfaces import RecframeError

REGISTRY_TABLE = "model_registry"
REGISTRY_SCHEMA = "main"


class ChampionError(RecframeError):
    """There is no champion to serve (no warehouse, no registry table, no champion for the tenant)."""

    exit_code = 2


def resolve_champion(tenant: str = "default", warehouse: str | Path | None = None, lock_timeout_s: float = 30) -> Path:
    """The run directory of ``tenant``'s champion in the ``model_registry`` of DuckDB file ``warehouse``."""
    import duckdb

    from recframe.datasource.warehouse import connect, warehouse_lock

    if warehouse is None:
        raise ChampionError("serving the champion needs the warehouse that holds model_registry: --warehouse FILE")
    path = Path(warehouse).expanduser()
    if not path.is_file():
        raise ChampionError(f"warehouse {path} does not exist: give the DuckDB file your runs registered models in")
    with warehouse_lock(path, timeout=lock_timeout_s):
        con = connect(path, read_only=True)
        try:
            rows = con.execute(
                f'select model_version, run_dir from "{REGISTRY_SCHEMA}"."{REGISTRY_TABLE}" '
                "where tenant = ? and is_champion",
                [tenant],
            ).fetchall()
        except duckdb.CatalogException:
            raise ChampionError(
                f"{path} has no {REGISTRY_TABLE} table: register a model first (a run whose gates pass, "
                "or recframe promote RUN_DIR)"
            ) from None
        finally:
            con.close()
    if not rows:
        raise ChampionError(f"tenant {tenant!r} has no champion in {path}: promote a run (recframe promote RUN_DIR)")
    version, run_dir = rows[0]
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ChampionError(f"the champion {version} of tenant {tenant!r} points at {run_dir}, which no longer exists")
    return run_dir


def artifact_dir(run_or_artifact: str | Path) -> Path:
    """The model artifact of a run directory (``RUN_DIR/model``), or the artifact folder itself."""
    path = Path(run_or_artifact).expanduser()
    if (path / "model" / "model.json").is_file():
        return path / "model"
    if (path / "model.json").is_file():
        return path
    if not path.exists():
        raise ChampionError(f"{path} does not exist: give a run directory (or 'champion')")
    raise ChampionError(f"{path} holds no model artifact (model/model.json): run its train step first")


def artifact_version(model_dir: str | Path) -> str:
    """``<model name>-<12 hex>``: the registry's name for the exact weights in ``model_dir``."""
    from recframe.registry import model_version

    return model_version(model_dir)
