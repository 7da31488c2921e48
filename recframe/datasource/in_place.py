"""Read events where they already live (``datasource.raw.mode: in_place``), never writing to them.

A warehouse source builds its sessions either from recframe's own append-only raw tables, filled by
the ingest step (``ingest``, the default), or straight from a table, view or Parquet lake a loader
(Fivetran, Airbyte, Snowpipe, a Spark job) already maintains (``in_place``). In place, the dbt
project reads the source through its ``recframe_events`` ``source()``, whose database, schema and
identifier come from dbt vars; recframe writes nothing to it and copies none of its rows.

This module holds the parts both warehouses share: the config (:func:`resolve`), the column check
(:func:`map_columns`: a missing table or column is one line naming it, before any work), the source's
fingerprint (row count and latest timestamp, :class:`Fingerprint`) and the dbt vars of a build
(:func:`dbt_vars`, :func:`dbt_env`). The DuckDB specifics (a read-only attached file, a view over a Parquet glob) are
:func:`prepare_duckdb`'s.
"""

from __future__ import annotations

import glob
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recframe.datasource.formats import RawFormat
from recframe.interfaces import ConfigError, DataError

#: ``datasource.raw.mode`` values
MODES = ("ingest", "in_place")
#: alias of a source file attached (read-only) to the DuckDB warehouse, unless raw.table names one
ATTACH_ALIAS = "recframe_source"
#: schema and view recframe creates in its own DuckDB warehouse over a Parquet glob (no rows copied)
LAKE_SCHEMA, LAKE_VIEW = "recframe_lake", "events"
#: config keys that only mean something when a file is ingested
INGEST_ONLY_KEYS = ("items_path", "header", "names", "delimiter")

_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")


@dataclass(frozen=True)
class InPlaceConfig:
    """Where an in-place source is: ``table`` (with ``schema`` and optionally ``database``, or an
    ``attach`` file on DuckDB) or a Parquet ``path`` glob (DuckDB); ``tenant_column`` maps the tenant."""

    database: str | None = None
    schema: str | None = None
    table: str | None = None
    attach: str | None = None
    path: str | None = None
    tenant_column: str | None = None

    def name(self) -> str:
        """The source as a user wrote it (for messages)."""
        if self.path:
            return self.path
        return ".".join(p for p in (self.database, self.schema, self.table) if p)


def mode_of(raw: Mapping[str, Any], key: str = "datasource.raw") -> str:
    """The validated ``raw.mode`` (``ingest`` when absent)."""
    mode = raw.get("mode") or "ingest"
    if mode not in MODES:
        raise ConfigError(f"{key}.mode", mode, f"must be one of {', '.join(MODES)}")
    return mode


def split_table(key: str, value: Any) -> tuple[str | None, str, str]:
    """``SCHEMA.TABLE`` or ``DATABASE.SCHEMA.TABLE`` as its parts, each a plain identifier."""
    parts = value.split(".") if isinstance(value, str) else []
    if len(parts) not in (2, 3) or not all(_IDENT_RE.match(p) for p in parts):
        raise ConfigError(
            key, value, "must be SCHEMA.TABLE or DATABASE.SCHEMA.TABLE of plain identifiers (letters, digits, _ or $)"
        )
    if len(parts) == 2:
        return None, parts[0], parts[1]
    return parts[0], parts[1], parts[2]


def resolve(raw: dict[str, Any], warehouse: str, key: str = "datasource.raw") -> InPlaceConfig:
    """The validated in-place settings of a ``raw`` block (no I/O). Pops ``columns.tenant`` from ``raw``.

    ``warehouse`` is ``duckdb`` or ``snowflake``: a Parquet ``path`` and an ``attach`` file are DuckDB's.
    """
    columns = dict(raw.get("columns") or {})
    tenant_column = columns.pop("tenant", None)
    raw["columns"] = columns
    table, path, attach = raw.get("table"), raw.get("path"), raw.get("attach")
    for k in INGEST_ONLY_KEYS:
        if raw.get(k) is not None:
            raise ConfigError(f"{key}.{k}", raw[k], "is only read when a file is ingested (raw.mode=ingest); remove it")
    if raw.get("format") == "synthetic" and table is None and path is None:
        raise ConfigError(f"{key}.format", "synthetic", "is generated, not read in place: use raw.mode=ingest")
    if (table is None) == (path is None):
        raise ConfigError(
            f"{key}.table", table, "raw.mode=in_place needs exactly one of raw.table (a table or view) or raw.path"
        )
    if warehouse != "duckdb":
        if path is not None:
            raise ConfigError(f"{key}.path", path, "a Parquet lake is read in place on DuckDB only; name a table")
        if attach is not None:
            raise ConfigError(f"{key}.attach", attach, "attaching a file is DuckDB's; remove it")
    if tenant_column is not None and (not isinstance(tenant_column, str) or not tenant_column):
        raise ConfigError(f"{key}.columns.tenant", tenant_column, "must be a column name")
    if path is not None:
        if attach is not None:
            raise ConfigError(f"{key}.attach", attach, "attaches a DuckDB file holding raw.table; a lake needs none")
        if not isinstance(path, str) or not path.strip():
            raise ConfigError(f"{key}.path", path, "must be a Parquet file or glob")
        return InPlaceConfig(path=path, tenant_column=tenant_column)
    database, schema, name = split_table(f"{key}.table", table)
    if attach is not None:
        if not isinstance(attach, str) or not attach:
            raise ConfigError(f"{key}.attach", attach, "must be the path of a DuckDB file")
        database = database or ATTACH_ALIAS
    elif warehouse == "duckdb" and database is None and schema.lower() == "raw":
        raise ConfigError(
            f"{key}.table", table, "schema raw holds recframe's raw tables: use the loader's schema or attach its file"
        )
    return InPlaceConfig(database, schema, name, attach, None, tenant_column)


def map_columns(fmt: RawFormat, tenant_column: str | None, available: Sequence[str], where: str) -> dict[str, str]:
    """Canonical column -> the source's exact column name, for every column the format maps.

    Names match case-insensitively (Snowflake upper-cases unquoted names); a mapped column the
    source lacks is a :class:`DataError` naming it and the columns there are.
    """
    by_lower = {c.lower(): c for c in available}
    wanted = {c: s for c, s in fmt.mapping.items() if s}
    if tenant_column:
        wanted["tenant"] = tenant_column
    out: dict[str, str] = {}
    for canonical, col in wanted.items():
        found = by_lower.get(col.lower())
        if found is None:
            shown = ", ".join(available[:30]) + (", ..." if len(available) > 30 else "")
            raise DataError(
                f"{where} has no column {col!r} (mapped to {canonical} by datasource.raw.format={fmt.name} / "
                f"raw.columns); its columns: {shown}"
            )
        out[canonical] = found
    return out


@dataclass(frozen=True)
class Fingerprint:
    """What identifies an in-place load: the source's row count and its latest timestamp (as stored)."""

    rows: int
    latest: str | None

    def etl_id(self, source: str, tenant: str) -> str:
        """The build's load id (20 hex digits, like an ingest's): equal sources give equal ids."""
        text = f"{source}|{tenant}|{self.rows}|{self.latest}"
        return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:20]

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "latest_timestamp": self.latest}


def fingerprint_sql(relation: str, columns: Mapping[str, str], quote: Any, tenant: str | None) -> tuple[str, list]:
    """The fingerprint query (row count, latest raw timestamp) of ``relation`` and its parameters."""
    sql = f"select count(*), cast(max({quote(columns['ts_raw'])}) as varchar) from {relation}"
    params: list[Any] = []
    if "tenant" in columns and tenant:
        sql += f" where cast({quote(columns['tenant'])} as varchar) = ?"
        params.append(tenant)
    return sql, params


def load_epoch_ms(now: datetime | None = None) -> int:
    """The reference time of an in-place build's future-timestamp check: now, to the hour."""
    now = now or datetime.now(UTC)
    return int(now.replace(minute=0, second=0, microsecond=0).timestamp() * 1000)


def dbt_vars(
    cfg: InPlaceConfig,
    location: tuple[str | None, str, str],
    columns: Mapping[str, str],
    fmt: RawFormat,
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """The dbt vars that point the ``recframe_events`` source at the in-place relation: the same from
    one build to the next while the source and the settings are (what changes is :func:`dbt_env`'s).

    ``build_source`` identifies the source and the ``settings`` (dbt vars) that shape sessions: an
    incremental build continues only sessions built with the same one, and rebuilds the rest.
    """
    database, schema, table = location
    shape = {"source": list(location), "columns": dict(columns), "ts_unit": fmt.ts_unit, "settings": dict(settings)}
    build_source = hashlib.sha1(json.dumps(shape, sort_keys=True, default=str).encode(), usedforsecurity=False)
    return {
        "build_source": build_source.hexdigest()[:20],
        "raw_mode": "in_place",
        "source_database": database,
        "source_schema": schema,
        "source_table": table,
        "source_columns": dict(columns),
        "source_ts_unit": fmt.ts_unit,
    }


#: the environment variables that carry what changes from one in-place build to the next
ENV_ETL_ID, ENV_LOAD_EPOCH_MS = "RECFRAME_ETL_ID", "RECFRAME_LOAD_EPOCH_MS"


def dbt_env(etl_id: str, now: datetime | None = None) -> dict[str, str]:
    """What changes with every build of a growing source (its load id, the load time), for dbt as
    environment variables rather than vars.

    dbt re-parses the whole project when any var changes (about a second of CPU, most of an
    incremental build's fixed cost) but only the files that read an environment variable when that
    variable changes; the models read these with ``env_var()``, falling back to the vars ``etl_id``
    and ``load_epoch_ms`` for a dbt run started by hand.
    """
    return {ENV_ETL_ID: etl_id, ENV_LOAD_EPOCH_MS: str(load_epoch_ms(now))}


# ---------------------------------------------------------------------------------------------- DuckDB
def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class DuckDBRelation:
    """An in-place source made readable by the warehouse: its dbt location, SQL name and columns."""

    location: tuple[str | None, str, str]
    sql: str
    columns: tuple[str, ...]
    attach: str | None = None
    #: the Parquet glob the view reads (a lake), else None
    parquet: str | None = None


def check_duckdb(cfg: InPlaceConfig, key: str = "datasource.raw") -> None:
    """Fail fast (no warehouse opened): the attached file or the Parquet files must exist."""
    if cfg.attach and not Path(cfg.attach).is_file():
        raise DataError(f"{key}.attach does not exist: {cfg.attach}")
    if cfg.path and not glob.glob(cfg.path, recursive=True):
        raise DataError(f"{key}.path matches no file: {cfg.path}")


def prepare_duckdb(con: Any, cfg: InPlaceConfig, key: str = "datasource.raw") -> DuckDBRelation:
    """Make the source readable from the warehouse connection ``con`` and read its columns.

    An ``attach`` file is attached READ_ONLY (DuckDB then refuses any write to it); a Parquet glob
    becomes a view in recframe's own ``recframe_lake`` schema (a definition, no rows), which dbt's
    source names. A missing table or column is one :class:`DataError` line.
    """
    check_duckdb(cfg, key)
    if cfg.path:
        con.execute(f"create schema if not exists {LAKE_SCHEMA}")
        try:
            con.execute(
                f"create or replace view {LAKE_SCHEMA}.{LAKE_VIEW} as "
                f"select * from read_parquet({_literal(cfg.path)}, union_by_name = true)"
            )
        except Exception as e:  # not Parquet, unreadable
            raise DataError(f"cannot read {key}.path {cfg.path} as Parquet: {' '.join(str(e).split())[:200]}") from None
        location: tuple[str | None, str, str] = (None, LAKE_SCHEMA, LAKE_VIEW)
    else:
        assert cfg.schema and cfg.table
        if cfg.attach:
            attached = {r[0] for r in con.execute("select database_name from duckdb_databases()").fetchall()}
            if cfg.database not in attached:
                path = _literal(str(Path(cfg.attach).resolve()))
                con.execute(f"attach {path} as {_q(cfg.database or '')} (read_only)")
        location = (cfg.database, cfg.schema, cfg.table)
    relation = ".".join(_q(p) for p in location if p)
    exists = (
        con.execute(
            "select count(*) from duckdb_tables() where (? is null or database_name = ?) and schema_name = ? "
            "and table_name = ?",
            [location[0], location[0], location[1], location[2]],
        ).fetchall()[0][0]
        + con.execute(
            "select count(*) from duckdb_views() where (? is null or database_name = ?) and schema_name = ? "
            "and view_name = ?",
            [location[0], location[0], location[1], location[2]],
        ).fetchall()[0][0]
    )
    if not exists:
        where = f"attached file {cfg.attach}" if cfg.attach else "the warehouse"
        raise DataError(f"{key}.table: no table or view {cfg.name()} in {where}")
    columns = tuple(d[0] for d in con.execute(f"select * from {relation} limit 0").description)
    return DuckDBRelation(location, relation, columns, cfg.attach, cfg.path)


def duckdb_fingerprint(con: Any, rel: DuckDBRelation, columns: Mapping[str, str], tenant: str) -> Fingerprint:
    """Row count and latest timestamp of the source (only ``tenant``'s rows when a column maps it).

    A lake whose timestamps are integers takes its latest one from the Parquet files' statistics
    (:func:`parquet_stats_latest`) instead of reading every timestamp: the same value, for a daily
    build that otherwise reads only the new day.
    """
    if rel.parquet and "tenant" not in columns:
        latest = parquet_stats_latest(con, rel, columns["ts_raw"])
        if latest is not None:
            rows = con.execute(f"select count(*) from {rel.sql}").fetchall()[0][0]
            return Fingerprint(int(rows), latest[0])
    sql, params = fingerprint_sql(rel.sql, columns, _q, tenant)
    rows, latest = con.execute(sql, params).fetchall()[0]
    return Fingerprint(int(rows), latest)


#: DuckDB types whose Parquet statistics give the column's exact maximum
_EXACT_STATS_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")


def parquet_stats_latest(con: Any, rel: DuckDBRelation, column: str) -> tuple[str | None] | None:
    """``(max(column) as text,)`` of a lake from its row groups' statistics, or None when they cannot
    give it exactly: the column is not an integer (statistics of text may be truncated, timestamps
    print otherwise), not stored in the files (a partition key), or a row group holding values has
    no maximum recorded. Integer maxima are
    exact, so the result is what ``cast(max(column) as varchar)`` over every row returns.
    """
    kind = con.execute(f"select typeof({_q(column)}) from {rel.sql} limit 1").fetchall()
    if not kind or kind[0][0] not in _EXACT_STATS_TYPES:
        return None
    chunks, missing, latest = con.execute(
        "select count(*),"
        " count(*) filter (where stats_max_value is null and coalesce(stats_null_count, -1) <> num_values),"
        " max(try_cast(stats_max_value as hugeint)) from parquet_metadata(?) where lower(path_in_schema) = lower(?)",
        [rel.parquet, column],
    ).fetchall()[0]
    if not chunks or missing:  # not a column of the files (a partition key), or no statistics
        return None
    return (None if latest is None else str(latest),)


def glob_matches(pattern: str) -> list[str]:
    """Files a Parquet glob matches (for messages and tests)."""
    return sorted(glob.glob(pattern, recursive=True))
