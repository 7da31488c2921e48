"""Ingest raw events into the embedded DuckDB warehouse as append-only tables.

The raw layer is append-only (``raw.events``, ``raw.items``, ``raw.loads``): each load appends its
rows under a new ``etl_id`` and records itself in ``raw.loads``; dbt's staging model reads only the
latest load per tenant. That makes every load reproducible and re-ingesting safe: a load whose
fingerprint equals the tenant's current load is skipped, so running the pipeline twice on the same
input neither grows the warehouse nor changes a single session.

Everything runs as SQL inside DuckDB (``read_csv`` / an Arrow scan + one ``INSERT ... SELECT``), so
10M rows ingest in seconds with Python touching only metadata.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from recframe.datasource.formats import RawFormat
from recframe.datasource.schema import raw_ddl
from recframe.interfaces import DataError

log = logging.getLogger("recframe")

RAW_SCHEMA = "raw"
#: seconds a run waits for another run's data step on the same warehouse file before giving up
LOCK_TIMEOUT_ENV = "RECFRAME_WAREHOUSE_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class LoadInfo:
    """What an ingest did: the tenant's current ``etl_id``, its row counts, and whether it was new."""

    tenant: str
    etl_id: str
    n_rows: int
    n_items: int
    skipped: bool


def ensure_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the raw schema and tables if missing (idempotent), from the contract in
    :mod:`recframe.datasource.schema`."""
    con.execute(";\n".join(raw_ddl("duckdb", RAW_SCHEMA)))


def fingerprint_files(*paths: Path | str | None, extra: Any = None) -> str:
    """A content hash of input files plus settings: equal inputs give equal fingerprints.

    SHA-1, not SHA-256: the fingerprint only detects an input that was already loaded (it guards
    against no adversary), and here SHA-1 reads 1.2 GB/s against SHA-256's 0.35 GB/s, which on a
    2 GB raw file was 5.8 s of a 48 s data step (``benchmarks/data_scale.py``). The ``sha1:``
    prefix keeps it apart from fingerprints written by older versions (those inputs load once more).
    """
    h = hashlib.sha1(json.dumps(extra, sort_keys=True, default=str).encode(), usedforsecurity=False)
    for p in paths:
        if p is None:
            h.update(b"<none>")
            continue
        with open(p, "rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
    return "sha1:" + h.hexdigest()


def fingerprint_params(params: Any) -> str:
    """A hash of generator parameters (a generated input is determined by them)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()


def _q(name: str) -> str:
    """Quote an identifier for DuckDB."""
    return '"' + name.replace('"', '""') + '"'


def _text(col: str | None) -> str:
    return "null::varchar" if not col else f"cast({_q(col)} as varchar)"


def _ts_ms_sql(unit: str) -> str:
    """SQL turning ``ts_raw`` (text) into epoch ms; null when it does not parse."""
    if unit == "ms":
        return "cast(try_cast(ts_raw as double) as bigint)"
    if unit == "s":
        return "cast(round(try_cast(ts_raw as double) * 1000) as bigint)"
    # ISO-like timestamps, with an optional trailing ' UTC' (REES46)
    return "epoch_ms(try_cast(regexp_replace(ts_raw, '\\s*UTC$', '') as timestamp))"


REJECTS_TABLE = "_recframe_rejects"
REJECTS_SCAN = "_recframe_reject_scans"


def relation_sql(path: Path | str, fmt: RawFormat) -> str:
    """A DuckDB table function reading a raw file: parquet by extension, else CSV (gzip allowed)."""
    name = str(path).lower()
    if name.endswith((".parquet", ".pq")):
        return f"read_parquet('{str(path).replace(chr(39), chr(39) * 2)}')"
    return csv_relation_sql(path, fmt)


def csv_relation_sql(path: Path | str, fmt: RawFormat) -> str:
    """A ``read_csv`` call reading every column as text (types are checked in dbt, not by the reader).

    Lines the reader cannot use (invalid UTF-8, too few or too many columns) must not abort the load
    nor vanish: ``ignore_errors`` + ``store_rejects`` keeps reading (still in parallel, unlike
    ``strict_mode=false``, which costs 2-3x) and lists every skipped line, which :func:`ingest` copies
    into ``raw.rejects`` so quarantine can count it.
    """
    opts = [
        "all_varchar = true",
        f"header = {'true' if fmt.header else 'false'}",
        f"delim = '{fmt.delimiter}'",
        "quote = '\"'",
        "escape = '\"'",
        "ignore_errors = true",
        "store_rejects = true",
        f"rejects_table = '{REJECTS_TABLE}'",
        f"rejects_scan = '{REJECTS_SCAN}'",
    ]
    if fmt.names:
        opts.append("names = [" + ", ".join(f"'{n}'" for n in fmt.names) + "]")
    path_sql = str(path).replace("'", "''")
    return f"read_csv('{path_sql}', {', '.join(opts)})"


def ingest(
    con: duckdb.DuckDBPyConnection,
    events: pa.Table | str,
    fmt: RawFormat,
    tenant: str,
    fingerprint: str | Callable[[], str],
    items: pa.Table | str | None = None,
    source: str = "",
) -> LoadInfo:
    """Append one load of ``events`` (an Arrow table or a SQL relation such as ``read_csv(...)``).

    ``n_rows`` counts every input row: the rows stored in ``raw.events`` plus the lines the CSV
    reader rejected (stored in ``raw.rejects``). ``items`` is an optional catalogue with columns
    ``product_sku_hash, category_hash, price_bucket`` (Coveo's ``sku_to_content``); formats whose
    events carry category/price fill ``raw.items`` from the events through ``fmt.items``. Skips the
    load when ``fingerprint`` equals the tenant's current one.

    ``fingerprint`` may be a function computing it (hashing a 2 GB file takes ~1.7 s). With a
    current load it is called first, since it decides the skip; with none, nothing can be skipped
    and it runs in a thread while DuckDB writes the load (DuckDB releases the GIL), the first load
    of a tenant then not waiting for it. Either way the load is committed with its fingerprint.
    """
    ensure_raw_tables(con)
    rows = con.execute(
        f"select etl_id, fingerprint, n_rows, n_items from {RAW_SCHEMA}.loads where tenant = ? "
        "order by etl_timestamp desc, etl_id desc limit 1",
        [tenant],
    ).fetchall()
    current = rows[0] if rows else None
    if current is not None and callable(fingerprint):
        fingerprint = fingerprint()
    if current is not None and current[1] == fingerprint:
        return LoadInfo(tenant, current[0], int(current[2]), int(current[3] or 0), skipped=True)

    now = datetime.now(UTC).replace(tzinfo=None)
    # unique per load (the fingerprint may not be known yet, and equal inputs may load twice)
    etl_id = hashlib.sha256(f"{tenant}|{now.isoformat()}|{uuid.uuid4()}".encode()).hexdigest()[:20]
    epoch_ms = int(now.replace(tzinfo=UTC).timestamp() * 1000)

    if isinstance(events, pa.Table):
        con.register("_recframe_src_events", events)
        src = "_recframe_src_events"
    else:
        src = events
        if source and Path(source).is_file() and Path(source).stat().st_size == 0:
            raise DataError(f"raw events file {source} is empty: nothing to ingest (check datasource.raw.path)")
    for table in (REJECTS_TABLE, REJECTS_SCAN):
        con.execute(f"drop table if exists {table}")
    m = fmt.mapping
    select = ", ".join(
        f"{_text(m.get(c))} as {c}"
        for c in ("session_key", "user_key", "event_type", "product_action", "sku", "ts_raw", "url")
    )
    hasher = ThreadPoolExecutor(1, thread_name_prefix="recframe-fingerprint") if callable(fingerprint) else None
    pending = hasher.submit(fingerprint) if hasher is not None else None
    con.execute("begin transaction")
    try:
        con.execute(
            f"""
            insert into {RAW_SCHEMA}.events
            select ?, ?, ?::timestamp, ?, cast(make_timestamp(ts_ms * 1000) as date),
                   session_key, user_key, event_type, product_action, sku, ts_raw, ts_ms, url
            from (select *, {_ts_ms_sql(fmt.ts_unit)} as ts_ms from (select {select} from {src}))
            """,
            [tenant, etl_id, now, epoch_ms],
        )
        n_rows = con.execute(f"select count(*) from {RAW_SCHEMA}.events where etl_id = ?", [etl_id]).fetchall()[0][0]
        if con.execute(
            "select count(*) from duckdb_tables() where table_name = ? and temporary", [REJECTS_TABLE]
        ).fetchall()[0][0]:
            con.execute(
                # one row per rejected line (the reader lists each error of a line separately)
                f"""insert into {RAW_SCHEMA}.rejects
                select ?, ?, line, min(cast(error_type as varchar)), min(csv_line)
                from {REJECTS_TABLE} group by line""",
                [tenant, etl_id],
            )
            n_rows += con.execute(f"select count(distinct line) from {REJECTS_TABLE}").fetchall()[0][0]
        if n_rows == 0 and source:
            raise DataError(f"raw events file {source} has no data rows (only a header?): nothing to ingest")
        n_items = 0
        if items is not None:
            if isinstance(items, pa.Table):
                con.register("_recframe_src_items", items)
                items_src = "_recframe_src_items"
            else:
                items_src = items
            con.execute(
                f"""insert into {RAW_SCHEMA}.items
                select ?, ?, cast(product_sku_hash as varchar), cast(category_hash as varchar),
                       cast(price_bucket as varchar)
                from {items_src}""",
                [tenant, etl_id],
            )
        elif fmt.items.get("sku"):
            it = fmt.items
            price = _text(it.get("price"))
            if it.get("price") and fmt.price_is_amount:
                # 1 + floor(log2(price)): 1 for prices < 2, then one bucket per doubling
                price = (
                    f"cast(cast(1 + floor(log2(greatest(try_cast({_q(it['price'])} as double), 1))) as integer) "
                    "as varchar)"
                )
            con.execute(
                f"""insert into {RAW_SCHEMA}.items
                select ?, ?, {_text(it["sku"])}, max({_text(it.get("category"))}),
                       max({price})
                from {src} group by all""",
                [tenant, etl_id],
            )
        n_items = con.execute(f"select count(*) from {RAW_SCHEMA}.items where etl_id = ?", [etl_id]).fetchall()[0][0]
        if pending is not None:
            fingerprint = pending.result()
        con.execute(
            f"insert into {RAW_SCHEMA}.loads values (?, ?, ?::timestamp, ?, ?, ?, ?)",
            [tenant, etl_id, now, fingerprint, source, n_rows, n_items],
        )
        con.execute("commit")
    except Exception as e:
        con.execute("rollback")
        if isinstance(e, (duckdb.BinderException, duckdb.InvalidInputException)) and not isinstance(events, pa.Table):
            # the file does not fit the format (missing columns, not CSV at all): one line, no traceback
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise DataError(
                f"cannot read raw events {source or 'input'} as format {fmt.name!r}: {first} "
                "(check datasource.raw.format, and raw.columns/header/delimiter for a custom file)"
            ) from None
        raise
    finally:
        if hasher is not None:
            hasher.shutdown(wait=True)  # never leave a thread reading the input behind a failed load
        for view in ("_recframe_src_events", "_recframe_src_items"):
            with contextlib.suppress(Exception):  # not registered
                con.unregister(view)
        for table in (REJECTS_TABLE, REJECTS_SCAN):
            with contextlib.suppress(Exception):
                con.execute(f"drop table if exists {table}")
    return LoadInfo(tenant, etl_id, int(n_rows), int(n_items), skipped=False)


# ---------------------------------------------------------------------------------------- locking
def connect(path: Path | str, **kwargs: Any) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect`` that turns "another process holds the file" into one clear line.

    DuckDB allows one writing process per database file; the second gets an ``IOException`` with a
    multi-line hint. Here it becomes a :class:`~recframe.interfaces.DataError` naming the file, the
    process that holds it and what to do.
    """
    try:
        return duckdb.connect(str(path), **kwargs)
    except duckdb.IOException as e:
        if "lock" not in str(e).lower():
            raise
        pid = re.search(r"\(PID (\d+)\)", str(e))
        holder = f" (PID {pid.group(1)})" if pid else ""
        raise DataError(
            f"warehouse {path} is in use by another process{holder}: wait for it to finish or close it, "
            "or set datasource.warehouse to another file"
        ) from None


@contextlib.contextmanager
def warehouse_lock(path: Path | str, timeout: float | None = None) -> Iterator[None]:
    """Serialise recframe data steps on one warehouse file (an advisory lock on ``<file>.lock``).

    Ingest, ``dbt build`` and the query each open and close the DuckDB file, and two runs
    interleaving them would fail half-way (DuckDB admits one writer per file) or mix dbt's shared
    target folder. Holding this lock for the whole data step makes concurrent runs take turns; a run
    that waits longer than ``timeout`` seconds (default: ``$RECFRAME_WAREHOUSE_LOCK_TIMEOUT`` or 900)
    stops with a one-line :class:`~recframe.interfaces.DataError`. Without ``fcntl`` (Windows) this
    is a no-op and DuckDB's own lock (see :func:`connect`) is the guard.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path = Path(path)
    if timeout is None:
        timeout = float(os.environ.get(LOCK_TIMEOUT_ENV) or DEFAULT_LOCK_TIMEOUT_S)
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a+") as f:
        deadline = time.monotonic() + timeout
        warned = False
        while True:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "?"
                if time.monotonic() >= deadline:
                    raise DataError(
                        f"warehouse {path} is locked by another recframe run (PID {holder}) for more than "
                        f"{timeout:g} s: wait for it to finish, raise {LOCK_TIMEOUT_ENV}, "
                        "or set datasource.warehouse to another file"
                    ) from None
                if not warned:
                    log.warning("warehouse %s is in use by another run (PID %s): waiting for it", path, holder)
                    warned = True
                time.sleep(0.2)
        try:
            f.seek(0)
            f.truncate()
            f.write(str(os.getpid()))
            f.flush()
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
