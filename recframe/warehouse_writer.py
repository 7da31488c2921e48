"""Writing recframe's own tables (``recommendations``, ``model_registry``) into a warehouse.

One small interface over DuckDB and Snowflake: run statements with ``?`` parameters, fetch rows, and
replace a set of rows atomically (:meth:`WarehouseWriter.replace_rows`), so a reader sees the old
rows or the new ones, and a failure at any point leaves the old rows in place. Snowflake loads the
new rows into a staging table first (the bulk load, Parquet ``PUT`` + ``COPY INTO``), then deletes
the old rows and inserts the new ones in one transaction; DuckDB, whose transactions already give
readers that view, deletes and inserts straight from the Arrow (or pandas) scan in one transaction.

:func:`writer_for` picks the warehouse a run read from: the DuckDB file of ``datasource=duckdb``,
the Snowflake database and schema of ``datasource=snowflake``, or for ``datasource=files`` the DuckDB
file given as ``score.warehouse``.
"""

from __future__ import annotations

import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from recframe.interfaces import ConfigError, RecframeError

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger("recframe")


class WarehouseWriteError(RecframeError):
    """A write to the warehouse failed; the rows that were there before are left as they were."""


class WarehouseWriter(ABC):
    """A connection to one schema of a warehouse, for recframe's own tables."""

    #: where the tables live, for messages (``/path/wh.duckdb (main)``, ``snowflake DB.SCHEMA``)
    where: str = ""

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    @abstractmethod
    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]: ...

    @abstractmethod
    def table(self, name: str) -> str:
        """The qualified name of ``name`` in this writer's schema."""

    @abstractmethod
    def _stage(self, staging: str, frame: pd.DataFrame | pa.Table) -> None:
        """Append ``frame`` to the (already created) table ``staging``."""

    #: the statement that opens a transaction in this warehouse's dialect
    BEGIN = "begin transaction"

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything in the block commits together, or is rolled back if the block raises."""
        self.execute(self.BEGIN)
        try:
            yield
        except BaseException:
            self.execute("rollback")
            raise
        self.execute("commit")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the connection."""

    def __enter__(self) -> WarehouseWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def replace_rows(
        self,
        name: str,
        ddl: str,
        frame: pd.DataFrame | pa.Table,
        where: str,
        params: Sequence[Any],
        before_swap: Callable[[], None] | None = None,
    ) -> int:
        """Replace the rows of table ``name`` matching ``where`` by ``frame``, atomically.

        ``ddl`` is the column list of the table (``tenant varchar, ...``), used to create the table
        and its staging twin. ``before_swap`` runs between the staging load and the swap (a test
        injects a failure there). Returns the number of rows written.
        """
        import uuid

        # a staging table of its own: two writers of the same table never share one
        target, staging = self.table(name), self.table(f"{name}__staging_{uuid.uuid4().hex[:12]}")
        try:
            self.execute(f"create table if not exists {target} ({ddl})")
            self.execute(f"create or replace table {staging} ({ddl})")
            if len(frame):
                self._stage(staging, frame)
            if before_swap is not None:
                before_swap()
            with self.transaction():
                self.execute(f"delete from {target} where {where}", params)
                self.execute(f"insert into {target} select * from {staging}")
        except RecframeError:
            raise
        except Exception as e:
            raise self._write_error(target, e) from None
        finally:
            with contextlib.suppress(Exception):
                self.execute(f"drop table if exists {staging}")
        return len(frame)

    def _write_error(self, target: str, e: Exception) -> WarehouseWriteError:
        msg = " ".join(str(e).split())[:300] or type(e).__name__
        return WarehouseWriteError(f"writing {target} in {self.where} failed, previous rows kept: {msg}")


class DuckDBWriter(WarehouseWriter):
    """recframe's tables in a DuckDB file, in the schema of the dbt marts (``main``).

    The file's advisory lock (the one the data step takes) is held while the writer is open, so a
    concurrent run's data step and this write take turns.
    """

    def __init__(self, path: str | Path, schema: str = "main") -> None:
        from recframe.datasource.warehouse import connect, warehouse_lock

        self.path = Path(path)
        self.schema = schema
        self.where = f"{self.path} ({schema})"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = warehouse_lock(self.path)
        self._lock.__enter__()
        try:
            self.con = connect(self.path)
            self.con.execute(f'create schema if not exists "{schema}"')
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise

    def table(self, name: str) -> str:
        return f'"{self.schema}"."{name}"'

    def replace_rows(
        self,
        name: str,
        ddl: str,
        frame: pd.DataFrame | pa.Table,
        where: str,
        params: Sequence[Any],
        before_swap: Callable[[], None] | None = None,
    ) -> int:
        """DuckDB: delete and insert in one transaction, straight from the frame's scan.

        A staging copy buys nothing here: DuckDB's transaction alone keeps readers on the old rows
        until the commit and rolls everything back on a failure, and skipping the copy halves the
        write. ``before_swap`` runs inside the transaction, after the new rows are in.
        """
        target = self.table(name)
        try:
            self.execute(f"create table if not exists {target} ({ddl})")
            with self.transaction():
                self.execute(f"delete from {target} where {where}", params)
                if len(frame):
                    self._stage(target, frame)
                if before_swap is not None:
                    before_swap()
        except RecframeError:
            raise
        except Exception as e:
            raise self._write_error(target, e) from None
        return len(frame)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.con.execute(sql, list(params))

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.con.execute(sql, list(params)).fetchall()

    def _stage(self, staging: str, frame: pd.DataFrame | pa.Table) -> None:
        # a pandas frame or an Arrow table (dictionary columns included) is scanned in place
        self.con.register("_recframe_stage_src", frame)
        try:
            self.con.execute(f"insert into {staging} select * from _recframe_stage_src")
        finally:
            self.con.unregister("_recframe_stage_src")

    def close(self) -> None:
        if getattr(self, "con", None) is not None:
            self.con.close()
            self.con = None
            self._lock.__exit__(None, None, None)


class SnowflakeWriter(WarehouseWriter):
    """recframe's tables in the Snowflake database and schema of the dbt marts.

    ``source`` is a :class:`~recframe.datasource.snowflake.SnowflakeSource` (it holds the
    connection settings; its ``connect`` turns failures into one line without the password).
    """

    BEGIN = "begin"

    def __init__(self, source: Any) -> None:
        self.source = source
        self.database = str(source.database).upper()
        self.schema = str(source.schema).upper()
        self.where = f"snowflake {self.database}.{self.schema}"
        self.con = source.connect()
        self.cur = self.con.cursor()

    def table(self, name: str) -> str:
        return f"{self.database}.{self.schema}.{name.upper()}"

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.cur.execute(sql, list(params) or None)

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.cur.execute(sql, list(params) or None).fetchall()

    def _stage(self, staging: str, frame: pd.DataFrame | pa.Table) -> None:
        """The connector's bulk load: the frame as Parquet, ``PUT`` to a temporary stage, ``COPY INTO``."""
        import tempfile

        import pyarrow as pa
        import pyarrow.parquet as pq

        if isinstance(frame, pa.Table):  # dictionary columns decoded: COPY reads plain strings
            table = pa.table({c.upper(): _decoded(frame[c]) for c in frame.column_names})
        else:
            table = pa.Table.from_pandas(frame.rename(columns=str.upper), preserve_index=False)
        # microseconds without a zone: COPY's logical types read them as TIMESTAMP_NTZ
        table = table.cast(
            pa.schema(
                [pa.field(f.name, pa.timestamp("us")) if pa.types.is_timestamp(f.type) else f for f in table.schema]
            )
        )
        stage = f"{self.database}.{self.schema}.RECFRAME_WRITE_STAGE"
        with tempfile.TemporaryDirectory(prefix="recframe-stage-") as tmp:
            path = Path(tmp) / "part.parquet"
            pq.write_table(table, path, compression="snappy")
            self.execute(f"create temporary stage if not exists {stage}")
            self.execute(f"put 'file://{path.as_posix()}' @{stage} auto_compress=false overwrite=true")
            self.execute(
                f"copy into {staging} from @{stage} file_format = (type = parquet use_logical_type = true) "
                "match_by_column_name = case_insensitive purge = true on_error = abort_statement"
            )
        got = self.fetch(f"select count(*) from {staging}")[0][0]
        if got != len(frame):
            raise WarehouseWriteError(f"bulk load into {staging} wrote {got} of {len(frame)} rows")

    def close(self) -> None:
        if getattr(self, "con", None) is not None:
            with contextlib.suppress(Exception):
                self.con.close()
            self.con = None


def _decoded(column: Any) -> Any:
    """An Arrow column with dictionary encoding undone (other columns as they are)."""
    import pyarrow as pa

    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


def writer_for(datasource: Any, warehouse: str | Path | None = None) -> WarehouseWriter:
    """The writer for the warehouse ``datasource`` read from; ``warehouse`` (a DuckDB file) overrides it.

    A files datasource has no warehouse: ``warehouse`` (``score.warehouse``) is then required.
    """
    if warehouse:
        return DuckDBWriter(warehouse)
    kind = type(datasource).__name__
    if kind == "SnowflakeSource":
        return SnowflakeWriter(datasource)
    wh = getattr(datasource, "warehouse", None)
    if isinstance(wh, Path):
        return DuckDBWriter(wh)
    raise ConfigError(
        "score.warehouse", None, f"is required with a {kind} (it reads no warehouse): set score.warehouse=FILE.duckdb"
    )


# ------------------------------------------------------------------------------------- recframe's tables
RECOMMENDATIONS = "recommendations"
MODEL_REGISTRY = "model_registry"
REGISTRY_LOG = "model_registry_log"
LATEST_VIEW = "latest_recommendations"

RECOMMENDATIONS_DDL = (
    "tenant varchar, session_key varchar, user_key varchar, rank integer, sku varchar, score double, "
    "model_version varchar, run_id varchar, scored_at timestamp"
)
MODEL_REGISTRY_DDL = (
    "tenant varchar, model_version varchar, run_id varchar, run_dir varchar, model varchar, metrics varchar, "
    "gates_passed boolean, data_fingerprint varchar, config_hash varchar, git_commit varchar, packages varchar, "
    "artifact_sha256 varchar, registered_at timestamp, is_champion boolean, promoted_by varchar, "
    "promoted_at timestamp, mlflow_model varchar, mlflow_version varchar"
)
REGISTRY_LOG_DDL = (
    "tenant varchar, action varchar, from_version varchar, to_version varchar, os_user varchar, moved_at timestamp"
)


def ensure_tables(writer: WarehouseWriter) -> None:
    """Create recframe's tables if missing, and the champion's view over them."""
    for name, ddl in (
        (RECOMMENDATIONS, RECOMMENDATIONS_DDL),
        (MODEL_REGISTRY, MODEL_REGISTRY_DDL),
        (REGISTRY_LOG, REGISTRY_LOG_DDL),
    ):
        writer.execute(f"create table if not exists {writer.table(name)} ({ddl})")
    recs, reg = writer.table(RECOMMENDATIONS), writer.table(MODEL_REGISTRY)
    # the champion's rows of its latest scoring, per tenant: what apps and analysts read
    writer.execute(
        f"""create or replace view {writer.table(LATEST_VIEW)} as
        with champion as (select tenant, model_version from {reg} where is_champion),
        latest as (
            select r.tenant, max(r.scored_at) as scored_at
            from {recs} r join champion c on r.tenant = c.tenant and r.model_version = c.model_version
            group by r.tenant
        )
        select r.*
        from {recs} r
        join champion c on r.tenant = c.tenant and r.model_version = c.model_version
        join latest l on r.tenant = l.tenant and r.scored_at = l.scored_at"""
    )
