"""recframe's data contract: the raw tables it owns and the mart it reads, written once.

Both warehouses create their raw layer from :data:`RAW_TABLES` (:func:`create_table_sql` renders the
DDL per dialect), and both dbt builds give ``session_sequences`` the columns of
:data:`SESSION_SEQUENCES` (the tests compare them). The integer fast paths a warehouse may carry
beside the named lists (DuckDB's roll-up keeps item keys and action ranks) are part of the contract
too, as :data:`FAST_PATH_COLUMNS`: present everywhere, null where a warehouse does not build them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    """One column: its name, logical type (a key of :data:`TYPES`), nullability and, on DuckDB, a
    storage hint (``using compression ...``) where measurement showed one pays."""

    name: str
    type: str
    not_null: bool = False
    duckdb_storage: str | None = None


#: logical type -> type name per dialect
TYPES: dict[str, dict[str, str]] = {
    "text": {"duckdb": "varchar", "snowflake": "varchar"},
    "bigint": {"duckdb": "bigint", "snowflake": "bigint"},
    "integer": {"duckdb": "integer", "snowflake": "integer"},
    "timestamp": {"duckdb": "timestamp", "snowflake": "timestamp_ntz"},
    "date": {"duckdb": "date", "snowflake": "date"},
    "text_list": {"duckdb": "varchar[]", "snowflake": "array"},
    "bigint_list": {"duckdb": "bigint[]", "snowflake": "array"},
    "integer_list": {"duckdb": "integer[]", "snowflake": "array"},
    "tinyint_list": {"duckdb": "utinyint[]", "snowflake": "array"},
}
DIALECTS = ("duckdb", "snowflake")

# sku, ts_raw and url are stored as is on DuckDB: with about one distinct SKU per two or three events,
# string compression analysis cost ~3 CPU s of a 10M-row load to halve 520 MB, and compressing the two
# carried-only columns cost about a third of the write; the session and user ids compress well (a
# session's events are adjacent) and stay compressed, so staging runs its string functions once per
# distinct value
_UNCOMPRESSED = "using compression uncompressed"

#: recframe's append-only raw tables (ingest mode); ``loads`` is written last by every load
RAW_TABLES: dict[str, tuple[Column, ...]] = {
    "loads": (
        Column("tenant", "text", True),
        Column("etl_id", "text", True),
        Column("etl_timestamp", "timestamp", True),
        Column("fingerprint", "text", True),
        Column("source", "text"),
        Column("n_rows", "bigint"),
        Column("n_items", "bigint"),
    ),
    "events": (
        Column("tenant", "text", True),
        Column("etl_id", "text", True),
        Column("etl_timestamp", "timestamp", True),
        Column("etl_epoch_ms", "bigint", True),
        Column("event_date", "date"),
        Column("session_key", "text"),
        Column("user_key", "text"),
        Column("event_type", "text"),
        Column("product_action", "text"),
        Column("sku", "text", duckdb_storage=_UNCOMPRESSED),
        Column("ts_raw", "text", duckdb_storage=_UNCOMPRESSED),
        Column("ts_ms", "bigint"),
        Column("url", "text", duckdb_storage=_UNCOMPRESSED),
    ),
    "rejects": (
        Column("tenant", "text", True),
        Column("etl_id", "text", True),
        Column("line", "bigint"),
        Column("error_type", "text"),
        Column("raw_line", "text"),
    ),
    "items": (
        Column("tenant", "text", True),
        Column("etl_id", "text", True),
        Column("sku", "text"),
        Column("category", "text"),
        Column("price_bucket", "text"),
    ),
}

#: the integer fast paths of ``session_sequences`` (null where a warehouse does not build them)
FAST_PATH_COLUMNS = ("item_keys", "action_ranks")

#: the mart recframe's query reads: one row per accepted session, lists in time order
SESSION_SEQUENCES: tuple[Column, ...] = (
    Column("session_uid", "text", True),
    Column("tenant", "text", True),
    Column("session_id", "text", True),
    Column("etl_id", "text"),
    Column("session_start_ms", "bigint", True),
    Column("session_end_ms", "bigint", True),
    Column("session_start", "timestamp"),
    Column("length", "bigint", True),
    Column("items", "text_list"),
    Column("item_keys", "integer_list"),
    Column("actions", "text_list"),
    Column("action_ranks", "tinyint_list"),
    Column("timestamps", "bigint_list"),
)


def column_sql(column: Column, dialect: str) -> str:
    """One column definition in ``dialect``."""
    parts = [column.name, TYPES[column.type][dialect]]
    if column.not_null:
        parts.append("not null")
    if dialect == "duckdb" and column.duckdb_storage:
        parts.append(column.duckdb_storage)
    return " ".join(parts)


def create_table_sql(dialect: str, qualified_name: str, columns: tuple[Column, ...]) -> str:
    """``create table if not exists`` for ``columns`` in ``dialect`` (``duckdb`` or ``snowflake``)."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}")
    body = ", ".join(column_sql(c, dialect) for c in columns)
    return f"create table if not exists {qualified_name} ({body})"


def raw_ddl(dialect: str, schema_sql: str, upper: bool = False) -> list[str]:
    """The statements creating recframe's raw schema and tables under ``schema_sql`` (already quoted);
    ``upper``: table names upper-cased (Snowflake's unquoted names)."""
    out = [f"create schema if not exists {schema_sql}"]
    for name, columns in RAW_TABLES.items():
        out.append(create_table_sql(dialect, f"{schema_sql}.{name.upper() if upper else name}", columns))
    return out
