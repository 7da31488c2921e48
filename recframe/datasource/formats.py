"""Raw event formats: how each source's columns map onto recframe's canonical raw columns.

A format is data, not code: a mapping from canonical column to a SQL expression over the source's
columns (read as text), plus how its timestamps are written. Adding a source is therefore a config
entry (``raw.format: custom`` with ``raw.columns``), never a new code path. The ingest step turns a
format into one ``INSERT ... SELECT`` that DuckDB runs over the file or the in-memory table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from recframe.interfaces import ConfigError

#: Canonical raw event columns (besides the load bookkeeping columns added by the ingest).
CANONICAL = ("session_key", "user_key", "event_type", "product_action", "sku", "ts_raw", "url")
#: How ``ts_raw`` is written: epoch milliseconds, epoch seconds, or an ISO-like timestamp text.
TS_UNITS = ("ms", "s", "timestamp")


@dataclass(frozen=True)
class RawFormat:
    """One raw event format.

    ``mapping`` maps canonical column -> source column name (quoted for SQL by the ingest); a value
    of ``None`` means the source lacks it. ``names`` gives column names for headerless files.
    ``items`` maps ``sku``/``category``/``price`` to event columns when the events themselves carry
    the catalogue (REES46, Taobao); raw prices become log2 buckets, so that price slices look alike
    across sources.
    """

    name: str
    mapping: Mapping[str, str | None]
    ts_unit: str = "ms"
    header: bool = True
    names: tuple[str, ...] | None = None
    items: Mapping[str, str | None] = field(default_factory=dict)
    delimiter: str = ","
    #: True when ``items["price"]`` is a raw price (bucketed on ingest: 1 + floor(log2(price))),
    #: False when it is already a bucket (Coveo's price_bucket)
    price_is_amount: bool = True


COVEO = RawFormat(
    name="coveo",
    mapping={
        "session_key": "session_id_hash",
        "user_key": None,
        "event_type": "event_type",
        "product_action": "product_action",
        "sku": "product_sku_hash",
        "ts_raw": "server_timestamp_epoch_ms",
        # hashed_url is read by no model or mart, yet as 64 stored bytes per event it was 60 % of
        # the raw table and ~15 % of the ingest's CPU (10M events: 1,080 -> 467 MB); keep it
        # with raw.columns.url=hashed_url
        "url": None,
    },
    ts_unit="ms",
)

REES46 = RawFormat(
    name="rees46",
    mapping={
        "session_key": "user_session",
        "user_key": "user_id",
        "event_type": "event_type",
        "product_action": None,
        "sku": "product_id",
        "ts_raw": "event_time",
        "url": None,
    },
    ts_unit="timestamp",
    items={"sku": "product_id", "category": "category_id", "price": "price"},
)

TAOBAO = RawFormat(
    name="taobao",
    mapping={
        "session_key": None,
        "user_key": "user_id",
        "event_type": "behavior",
        "product_action": None,
        "sku": "item_id",
        "ts_raw": "timestamp",
        "url": None,
    },
    ts_unit="s",
    header=False,
    names=("user_id", "item_id", "category_id", "behavior", "timestamp"),
    items={"sku": "item_id", "category": "category_id", "price": None},
)

#: Built-in formats; ``synthetic`` is Coveo's schema produced by :mod:`recframe.datasource.synthetic`.
FORMATS: dict[str, RawFormat] = {"synthetic": COVEO, "coveo": COVEO, "rees46": REES46, "taobao": TAOBAO}
FORMAT_NAMES = (*FORMATS, "custom")


_COLUMN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_ .\-]{0,127}")


def _check_column_name(key: str, value: Any) -> None:
    """Column names from config end up in SQL (identifiers and ``read_csv`` options): letters,
    digits, ``_``, space, ``.``, ``-`` only, so no value can close a quote and append SQL."""
    if value is None:
        return
    if not isinstance(value, str) or not _COLUMN_NAME.fullmatch(value):
        raise ConfigError(key, value, "must be a column name of letters, digits, '_', ' ', '.' or '-' (at most 128)")


def resolve_format(raw: Mapping[str, Any], key: str = "datasource.raw") -> RawFormat:
    """The :class:`RawFormat` a ``raw`` config block asks for (validated, no I/O).

    ``format: custom`` builds one from ``columns`` (canonical -> source column), ``ts_unit``,
    ``header``, ``names`` and ``delimiter``; for a built-in format those keys, when given, override.
    """
    name = raw.get("format", "synthetic")
    if name not in FORMAT_NAMES:
        raise ConfigError(f"{key}.format", name, f"must be one of {', '.join(FORMAT_NAMES)}")
    base = FORMATS.get(name, RawFormat(name="custom", mapping={c: None for c in CANONICAL}))
    columns = dict(raw.get("columns") or {})
    unknown = sorted(set(columns) - set(CANONICAL))
    if unknown:
        raise ConfigError(f"{key}.columns", unknown, f"keys must be among {', '.join(CANONICAL)}")
    for canon, col in columns.items():
        _check_column_name(f"{key}.columns.{canon}", col)
    mapping = {**base.mapping, **columns}
    if name == "custom":
        if not mapping.get("sku") or not mapping.get("ts_raw"):
            raise ConfigError(f"{key}.columns", columns, "a custom format needs at least sku and ts_raw columns")
        if not mapping.get("session_key") and not mapping.get("user_key"):
            raise ConfigError(f"{key}.columns", columns, "a custom format needs session_key or user_key")
        if not mapping.get("event_type") and not mapping.get("product_action"):
            raise ConfigError(f"{key}.columns", columns, "a custom format needs event_type or product_action")
    ts_unit = raw.get("ts_unit") or base.ts_unit
    if ts_unit not in TS_UNITS:
        raise ConfigError(f"{key}.ts_unit", ts_unit, f"must be one of {', '.join(TS_UNITS)}")
    names = raw.get("names")
    for i, n in enumerate(names or []):
        _check_column_name(f"{key}.names[{i}]", n)
    header = raw.get("header")
    delimiter = raw.get("delimiter")
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "'\"\\\r\n"):
        raise ConfigError(f"{key}.delimiter", delimiter, "must be one character, not a quote, backslash or newline")
    items = dict(base.items)
    if raw.get("item_columns"):
        for canon, col in dict(raw["item_columns"]).items():
            _check_column_name(f"{key}.item_columns.{canon}", col)
        items.update(dict(raw["item_columns"]))
    return RawFormat(
        name=name,
        mapping=mapping,
        ts_unit=ts_unit,
        header=base.header if header is None else bool(header),
        names=tuple(names) if names else base.names,
        items=items,
        delimiter=delimiter or base.delimiter,
        price_is_amount=base.price_is_amount,
    )
