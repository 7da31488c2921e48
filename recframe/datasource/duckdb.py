"""The embedded default data source: raw events -> DuckDB file -> dbt build -> one query -> split.

``load(work_dir)`` runs the whole data step with no network and no account:

1. **ingest** raw events (generated, or a file in a known/custom format) into the append-only raw
   tables of a persistent DuckDB file (skipped when the same input is already the current load);
   with ``raw.mode=in_place`` nothing is ingested: a table (in the warehouse, or in a file attached
   read-only) or a Parquet lake is checked and fingerprinted, and dbt reads it where it is
   (:mod:`recframe.datasource.in_place`);
2. **dbt build** the packaged project in-process (models and tests; a failing test raises
   :class:`~recframe.interfaces.DataError` naming it, so the pipeline stops before training);
3. **query** the ``session_sequences`` mart once for the date window and minimum length, and
4. **split** by time (:mod:`recframe.datasource.split`), writing ``lineage.json`` for the report.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from recframe import validation as v
from recframe.datasource import in_place
from recframe.datasource.formats import FORMAT_NAMES, RawFormat, resolve_format
from recframe.datasource.session_query import query_split
from recframe.datasource.split import TARGET_MODES
from recframe.interfaces import ConfigError, DataError, Dataset, DataSource

DEFAULT_ACTIONS = ("detail", "add", "purchase")
#: the environment of an in-place build's parse: no load id or load time (the models fall back to
#: their vars), so that the partial-parse state does not change with every build's load
PARSE_ENV: dict[str, str | None] = {in_place.ENV_ETL_ID: None, in_place.ENV_LOAD_EPOCH_MS: None}
KNOWN_ACTIONS = ("detail", "add", "purchase", "remove", "fav")
_DATE_RE = r"^\d{4}-\d{2}-\d{2}$"


def as_dict(value: Any, key: str) -> dict[str, Any]:
    """A config block (dict or OmegaConf node) as a plain dict."""
    if value is None:
        return {}
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(value, DictConfig):
            return OmegaConf.to_container(value, resolve=True)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover
        pass
    if not isinstance(value, Mapping):
        raise ConfigError(key, value, "must be a mapping")
    return {
        k: (list(x) if not isinstance(x, (str, bytes, Mapping)) and hasattr(x, "__iter__") else x)
        for k, x in dict(value).items()
    }


def _date(key: str, value: Any) -> str | None:
    import re

    if value is None or value == "":
        return None
    s = str(value)
    if not re.match(_DATE_RE, s):
        raise ConfigError(key, value, "must be a date YYYY-MM-DD or null")
    return s


def validate_split(split: Mapping[str, Any], key: str = "datasource.split") -> dict[str, Any]:
    """Validated split settings with defaults (shared by the warehouse sources)."""
    out = {
        "test_days": v.number(f"{key}.test_days", split.get("test_days", 7), 0.0, strict_min=True),
        "valid_days": v.number(f"{key}.valid_days", split.get("valid_days", 3), 0.0),
        "min_length": v.integer(f"{key}.min_length", split.get("min_length", 2), 2),
        "start_date": _date(f"{key}.start_date", split.get("start_date")),
        "end_date": _date(f"{key}.end_date", split.get("end_date")),
        "drop_unseen": v.boolean(f"{key}.drop_unseen", split.get("drop_unseen", True)),
        "targets": v.choice(f"{key}.targets", split.get("targets", "all"), TARGET_MODES),
    }
    unknown = sorted(set(split) - set(out))
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", split[unknown[0]], f"unknown key; known: {', '.join(out)}")
    return out


def validate_dbt_vars(vars: Mapping[str, Any], key: str = "datasource.dbt.vars") -> dict[str, Any]:
    """Validated dbt vars (only the ones recframe knows are checked; others pass through)."""
    out = dict(vars)
    if "actions" in out:
        acts = list(out["actions"] or [])
        if not acts:
            raise ConfigError(f"{key}.actions", out["actions"], "must list at least one action")
        for i, a in enumerate(acts):
            v.choice(f"{key}.actions[{i}]", a, KNOWN_ACTIONS)
        out["actions"] = acts
    if "session_gap_minutes" in out:
        v.positive(f"{key}.session_gap_minutes", out["session_gap_minutes"])
    if "max_session_length" in out:
        v.integer(f"{key}.max_session_length", out["max_session_length"], 2)
    if "future_tolerance_hours" in out:
        v.number(f"{key}.future_tolerance_hours", out["future_tolerance_hours"], 0.0)
    for d in ("start_date", "end_date"):
        if d in out:
            out[d] = _date(f"{key}.{d}", out[d])
    return out


class DuckDBSource(DataSource):
    """Raw events in an embedded DuckDB warehouse, sessionised by the packaged dbt project.

    Args:
        warehouse: path of the persistent DuckDB file (created if missing; shared between runs).
        tenant: tenant key the raw rows are stored and built under.
        raw: where raw events come from: ``format`` (synthetic, coveo, rees46, taobao, custom),
            ``path`` (file; required unless synthetic), ``items_path`` (a ``sku_to_content``-like
            catalogue), and for custom formats ``columns`` (canonical -> source column), ``ts_unit``
            (ms, s, timestamp), ``header``, ``names``, ``delimiter``.
        synthetic: generator settings when ``raw.format`` is synthetic: ``n_sessions``, ``n_items``,
            ``n_days``, ``seed`` (see :func:`recframe.datasource.synthetic.generate_events`).
        dbt: ``runner`` (local), ``vars`` (passed to dbt: actions, session_gap_minutes,
            max_session_length, ...), ``project_dir`` (null: the packaged project).
        split: ``test_days``, ``valid_days``, ``min_length``, ``start_date``/``end_date`` (the query's
            date window on session start), ``drop_unseen`` (items unseen in train leave valid/test),
            ``targets`` (``all``: next item at every position; ``last``: last item only; marked in a
            boolean ``target`` column of valid/test).
    """

    #: whose rules an in-place source follows (``in_place.resolve``): a Snowflake source validates its
    #: raw settings through a DuckDB source of its own, where DuckDB's rules (no source in schema
    #: ``raw``, which holds this file's raw tables) do not apply
    IN_PLACE_WAREHOUSE = "duckdb"

    def __init__(
        self,
        warehouse: str | Path = "warehouse.duckdb",
        tenant: str = "default",
        raw: Mapping[str, Any] | None = None,
        synthetic: Mapping[str, Any] | None = None,
        dbt: Mapping[str, Any] | None = None,
        split: Mapping[str, Any] | None = None,
    ) -> None:
        if not str(warehouse):
            raise ConfigError("datasource.warehouse", warehouse, "must be a file path")
        self.warehouse = Path(str(warehouse))
        if not isinstance(tenant, str) or not tenant or "'" in tenant or "/" in tenant:
            raise ConfigError("datasource.tenant", tenant, "must be a non-empty name without quotes or '/'")
        self.tenant = tenant

        self.raw = as_dict(raw, "datasource.raw")
        v.choice("datasource.raw.format", self.raw.get("format", "synthetic"), FORMAT_NAMES)
        self.mode = in_place.mode_of(self.raw)
        self.in_place: in_place.InPlaceConfig | None = None
        if self.mode == "in_place":
            self.in_place = in_place.resolve(self.raw, self.IN_PLACE_WAREHOUSE)  # pops raw.columns.tenant
        else:
            for k in ("table", "attach"):
                if self.raw.get(k) is not None:
                    raise ConfigError(f"datasource.raw.{k}", self.raw[k], "is read only with raw.mode=in_place")
        self.format: RawFormat = resolve_format(self.raw)
        if self.mode == "ingest" and self.format.name != "synthetic" and not self.raw.get("path"):
            raise ConfigError("datasource.raw.path", self.raw.get("path"), f"is required for format {self.format.name}")
        self._in_place_vars: dict[str, Any] = {}
        self._in_place_env: dict[str, str] = {}
        self.source_fingerprint: dict[str, Any] | None = None

        syn = as_dict(synthetic, "datasource.synthetic")
        self.synthetic = {
            "n_sessions": v.integer("datasource.synthetic.n_sessions", syn.get("n_sessions", 35_000), 10),
            "n_items": v.integer("datasource.synthetic.n_items", syn.get("n_items", 10_000), 10),
            "n_days": v.integer("datasource.synthetic.n_days", syn.get("n_days", 28), 2),
            "seed": v.integer("datasource.synthetic.seed", syn.get("seed", 42)),
        }
        extra = sorted(set(syn) - set(self.synthetic))
        for k in extra:  # the generator's other knobs (follow_prob, mean_length, ...) pass through
            self.synthetic[k] = syn[k]

        dbt_cfg = as_dict(dbt, "datasource.dbt")
        self.dbt_runner = v.choice("datasource.dbt.runner", dbt_cfg.get("runner", "local"), ["local"])
        self.full_refresh = v.boolean("datasource.dbt.full_refresh", dbt_cfg.get("full_refresh", False))
        self.dbt_vars = validate_dbt_vars(as_dict(dbt_cfg.get("vars"), "datasource.dbt.vars"))
        self.dbt_project_dir = Path(dbt_cfg["project_dir"]) if dbt_cfg.get("project_dir") else None
        self.split = validate_split(as_dict(split, "datasource.split"))

    # ------------------------------------------------------------------------------------------------
    def check(self) -> None:
        """Fail fast when an input file is missing (the warehouse itself is created on demand)."""
        if self.in_place is not None:
            in_place.check_duckdb(self.in_place)
            return
        for key in ("path", "items_path"):
            p = self.raw.get(key)
            if p and not Path(p).exists():
                raise DataError(f"datasource.raw.{key} does not exist: {p}")

    def build(self, work_dir: Path) -> Any:
        """Ingest the raw input and ``dbt build`` the project; return the load's ``LoadInfo``.

        The first half of :meth:`load`, public so that the warehouse can be built (and inspected, or
        documented with :meth:`generate_docs`) without querying a split. Timings land in
        ``self.timings``.
        """
        from recframe.datasource import transform
        from recframe.datasource.warehouse import ingest

        work_dir = Path(work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        self.check()
        self.warehouse.parent.mkdir(parents=True, exist_ok=True)
        self.timings: dict[str, float] = {}
        if self.in_place is not None:
            return self._build_in_place(work_dir)

        t0, c0 = time.perf_counter(), time.process_time()
        # dbt's import and project parse (~8 s of single-threaded Python on a fresh warehouse) need
        # no data: they run in a thread while DuckDB ingests (which releases the GIL), and the build
        # then starts from that parse's manifest
        self._parsed: Any = None
        parse = threading.Thread(target=self._parse_quietly, args=(work_dir,), name="recframe-dbt-parse", daemon=True)
        con = _connect(self.warehouse)
        try:
            fingerprint: str | Callable[[], str] = self.input_fingerprint
            if _current_fingerprint(con, self.tenant) is not None:
                # The input's fingerprint decides whether it is already loaded: computed first,
                # alone, since hashing releases the GIL only chunk by chunk and beside the parse
                # thread each chunk waited for it (2 GB: 5.6 s, not 1.7). With no current load
                # nothing can be skipped, and ingest hashes while DuckDB writes.
                fingerprint = self.input_fingerprint()
            parse.start()
            load = self.ingest_input(con, ingest, fingerprint)
        finally:
            con.close()
        self.timings["ingest_s"] = round(time.perf_counter() - t0, 3)
        self.timings["ingest_cpu_s"] = round(time.process_time() - c0, 3)

        t0, c0 = time.perf_counter(), time.process_time()
        parse.join()
        # the parse's manifest, handed over (dbt's documented reuse): the build neither re-reads
        # partial_parse.msgpack nor writes manifest.json twice, single-threaded work before the
        # first model (not measurable alone through this machine's noise)
        manifest, self._parsed = self._parsed, None
        self._dbt(["build"], work_dir, manifest=manifest)
        transform.write_lineage(work_dir / "target", work_dir / "lineage.json")
        self.timings["dbt_s"] = round(time.perf_counter() - t0, 3)
        self.timings["dbt_cpu_s"] = round(time.process_time() - c0, 3)
        return load

    def _build_in_place(self, work_dir: Path) -> Any:
        """Check the in-place source, fingerprint it and ``dbt build`` over it (nothing is ingested).

        dbt's import and project parse need the vars, not the data: once the source's columns are
        mapped they run in a thread while DuckDB counts the source for its fingerprint (which
        releases the GIL), and the build starts from that parse's manifest. The parse runs without
        the load id and load time (:data:`PARSE_ENV`: only the build renders them), so the
        partial-parse state is the same from one daily build to the next and dbt re-parses nothing.
        """
        from recframe.datasource import transform
        from recframe.datasource.warehouse import LoadInfo, ensure_raw_tables

        assert self.in_place is not None
        t0, c0 = time.perf_counter(), time.process_time()
        self._parsed: Any = None
        parse: threading.Thread | None = None
        con = _connect(self.warehouse)
        try:
            # recframe's own raw tables exist (dbt's source tests read them) and stay empty
            ensure_raw_tables(con)
            rel = in_place.prepare_duckdb(con, self.in_place)
            where = f"source {self.in_place.name()}"
            columns = in_place.map_columns(self.format, self.in_place.tenant_column, list(rel.columns), where)
            self._in_place_vars = in_place.dbt_vars(
                self.in_place, rel.location, columns, self.format, {"tenant": self.tenant, **self.dbt_vars}
            )
            parse = threading.Thread(
                target=self._parse_quietly, args=(work_dir, PARSE_ENV), name="recframe-dbt-parse", daemon=True
            )
            parse.start()
            fp = in_place.duckdb_fingerprint(con, rel, columns, self.tenant)
        except BaseException:
            if parse is not None:
                parse.join()  # a failed check: no dbt left running behind the error
            raise
        finally:
            con.close()
        if fp.rows == 0:
            assert parse is not None
            parse.join()
            raise DataError(f"source {self.in_place.name()} has no rows for tenant {self.tenant!r}: nothing to build")
        etl_id = fp.etl_id(self.in_place.name(), self.tenant)
        self.source_fingerprint = {"source": self.in_place.name(), **fp.as_dict()}
        self._in_place_env = in_place.dbt_env(etl_id)
        self.timings["check_source_s"] = round(time.perf_counter() - t0, 3)
        self.timings["check_source_cpu_s"] = round(time.process_time() - c0, 3)

        t0, c0 = time.perf_counter(), time.process_time()
        assert parse is not None
        parse.join()
        manifest, self._parsed = self._parsed, None
        self._dbt(["build"], work_dir, manifest=manifest)
        transform.write_lineage(work_dir / "target", work_dir / "lineage.json")
        self.timings["dbt_s"] = round(time.perf_counter() - t0, 3)
        self.timings["dbt_cpu_s"] = round(time.process_time() - c0, 3)
        return LoadInfo(self.tenant, etl_id, fp.rows, 0, skipped=False)

    def generate_docs(self, work_dir: Path) -> Path:
        """``dbt docs generate`` against the warehouse; returns the folder holding ``index.html``."""
        work_dir = Path(work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        self._dbt(["docs", "generate"], work_dir)
        state = self._state_dir() / "target"
        out = work_dir / "docs"
        out.mkdir(exist_ok=True)
        for name in ("index.html", "manifest.json", "catalog.json"):
            if (state / name).exists():
                shutil.copy2(state / name, out / name)
        return out

    def project_vars(self) -> dict[str, Any]:
        """The dbt vars of a build: the configured ones, plus what the raw format implies.

        ``sessionize_by_user`` is false when the format maps no user column: the gap-based
        sessionisation could only see an empty set, so dbt leaves that pass out (same sessions).
        """
        return {"sessionize_by_user": bool(self.format.mapping.get("user_key")), **self.dbt_vars, **self._in_place_vars}

    def _parse_quietly(self, work_dir: Path, env: Mapping[str, str | None] | None = None) -> None:
        """``dbt parse`` ahead of the build, keeping its manifest in ``self._parsed`` for the build.

        A failure here is left for the build to report: it then parses again itself and raises
        the one-line error. ``env``: the environment of the parse (default: the build's).
        """
        from recframe.datasource import dbt_parse_cache, transform

        with contextlib.suppress(Exception):
            transform.import_dbt()  # the import (most of a cached parse's time) runs here either way
            project, dbt_vars, target = self._invocation()
            env = self._in_place_env if env is None else env
            cli = [json.dumps(dbt_vars, sort_keys=True), target, str(self._state_dir() / "target")]
            # the build writes manifest.json; a real parse also writes partial_parse.msgpack
            self._parsed = dbt_parse_cache.parsed_manifest(
                self._state_dir(),
                project,
                cli,
                env,
                lambda: self._dbt(["parse", "--no-write-json"], work_dir, collect=False, env=env),
            )

    def _state_dir(self) -> Path:
        """The warehouse's dbt folder (synced project, persistent ``target/``), beside the file.

        Absolute: dbt resolves a relative ``--target-path`` against the project dir, not the cwd.
        """
        return self.warehouse.resolve().parent / f".{self.warehouse.name}.dbt"

    def _invocation(self) -> tuple[Path, dict[str, Any], str]:
        """The synced project, the vars and the profile target every dbt command of this warehouse uses."""
        from recframe.datasource import transform

        project = transform.prepare_project(self._state_dir(), self.dbt_project_dir)
        dbt_vars = {**self.project_vars(), "tenant": self.tenant, "duckdb_path": str(self.warehouse.resolve())}
        target = "duckdb"
        if self.in_place is not None and self.in_place.attach:
            target = "duckdb_attached"  # the source file attached read-only in dbt's connection too
            dbt_vars["duckdb_attach"] = str(Path(self.in_place.attach).resolve())
            dbt_vars["duckdb_attach_alias"] = self.in_place.database
        return project, dbt_vars, target

    def _dbt(
        self,
        args: list[str],
        work_dir: Path,
        collect: bool = True,
        manifest: Any = None,
        env: Mapping[str, str | None] | None = None,
    ) -> Any:
        """Run dbt on the synced project with recframe's vars; return what dbt returned (for
        ``parse``: the ``Manifest``, for ``build``: its results). ``env``: the environment variables
        of the invocation (default: the in-place build's load id and load time)."""
        from recframe.datasource import transform

        state = self._state_dir()
        project, dbt_vars, target = self._invocation()
        if self.full_refresh and args[:1] in (["build"], ["run"]):
            args = [*args, "--full-refresh"]
        try:
            return transform.run_dbt(
                args,
                project,
                work_dir,
                vars=dbt_vars,
                target=target,
                target_dir=state / "target",
                manifest=manifest,
                env=self._in_place_env if env is None else env,
            )
        finally:
            if collect:
                transform.collect_artifacts(state / "target", work_dir)

    def load(self, work_dir: Path) -> Dataset:
        """Ingest, build with dbt, query and split; see the module docstring."""
        work_dir = Path(work_dir)
        load = self.build(work_dir)
        timings = self.timings

        t0, c0 = time.perf_counter(), time.process_time()
        con = _connect(self.warehouse, preserve_order=True)
        try:
            quality = load_quality(
                con,
                self.tenant,
                load.etl_id,
                None if self.in_place is None else load.n_rows,
                {
                    "events": "raw.events",
                    "rejects": "raw.rejects",
                    "sessions": "main.int_sessions",
                    "quarantine": "main.quarantine",
                },
            )
            train, valid, test, split_stats = query_split(con, self.tenant, self.split)
            items = self._items(con)
        finally:
            con.close()
        timings["query_split_s"] = round(time.perf_counter() - t0, 3)
        timings["query_split_cpu_s"] = round(time.process_time() - c0, 3)
        stats = {
            "source": "duckdb",
            "warehouse": str(self.warehouse),
            "tenant": self.tenant,
            "format": self.format.name,
            "raw_mode": self.mode,
            "etl_id": load.etl_id,
            "ingest_skipped": load.skipped,
            **quality,
            **split_stats,
            "timings": timings,
        }
        if self.source_fingerprint is not None:
            stats["source_fingerprint"] = self.source_fingerprint
        return Dataset(train=train, valid=valid, test=test, stats=stats, items=items)

    # ------------------------------------------------------------------------------------------------
    def input_fingerprint(self) -> str:
        """The input's fingerprint: of the generator's parameters, or of the raw files' bytes."""
        from recframe.datasource.synthetic import GENERATOR_VERSION
        from recframe.datasource.warehouse import fingerprint_files, fingerprint_params

        if self.format.name == "synthetic":
            return fingerprint_params({"synthetic": self.synthetic, "generator": GENERATOR_VERSION})
        return fingerprint_files(
            self.raw["path"], self.raw.get("items_path"), extra={"format": self.format.name, "raw": self.raw}
        )

    def ingest_input(self, con: Any, ingest: Any, fp: str | Callable[[], str]) -> Any:
        """Ingest the raw input into the DuckDB connection ``con`` under fingerprint ``fp`` (or the
        function computing it, see :func:`~recframe.datasource.warehouse.ingest`). Public: the
        Snowflake source parses a file with it into a scratch DuckDB before uploading, so both
        warehouses read files by one set of rules."""
        from recframe.datasource.warehouse import relation_sql

        if self.format.name == "synthetic":
            from recframe.datasource.synthetic import generate_events

            fp = fp() if callable(fp) else fp  # the generator's parameters: nothing to hash
            # generate only when needed: an unchanged input is already the current load
            current = _current_fingerprint(con, self.tenant)
            if current == fp:
                return ingest(con, "", self.format, self.tenant, fp)
            data = generate_events(**self.synthetic)
            return ingest(con, data.events, self.format, self.tenant, fp, items=data.catalogue, source="synthetic")
        path = Path(self.raw["path"])
        items_path = self.raw.get("items_path")
        items_sql = None
        if items_path:
            items_sql = (
                f"(select product_sku_hash, category_hash, price_bucket from "
                f"read_csv('{str(items_path).replace(chr(39), chr(39) * 2)}', all_varchar = true, header = true))"
            )
        return ingest(
            con, relation_sql(path, self.format), self.format, self.tenant, fp, items=items_sql, source=str(path)
        )

    def _items(self, con: Any) -> pd.DataFrame:
        return con.execute(
            "select sku as item_id, category, price_bucket, n_events from main.items "
            "where tenant = ? order by n_events desc, sku",
            [self.tenant],
        ).df()


def _connect(path: Path, preserve_order: bool = False) -> Any:
    """A DuckDB connection to the warehouse with recframe's settings.

    ``preserve_order=False`` (ingest) lets DuckDB stream big inserts without keeping row order;
    the query connection keeps it, because the split relies on scans returning the rows of an
    ordered table in order (so 10M events need not be sorted again after unnesting).
    """
    from recframe.datasource.warehouse import connect

    con = connect(path)  # a file held by another process: one clear DataError line
    con.execute("set enable_progress_bar = false")
    con.execute(f"set memory_limit = '{os.environ.get('RECFRAME_DUCKDB_MEMORY', '2GB')}'")
    con.execute(f"set preserve_insertion_order = {'true' if preserve_order else 'false'}")
    if not preserve_order:
        # ingest: DuckDB keeps up to this much of its freed buffer blocks instead of unmapping and
        # faulting them in again (returned when the connection closes): at 10M events a fifth
        # fewer page faults and 1-3 fewer system CPU s; also set for dbt in profiles.yml
        con.execute("set block_allocator_memory = '1GB'")
    else:
        # the query: its memory sits beside the splits the client builds, so freed memory goes
        # back to the system (the allocator's background threads purge it) instead of being kept
        # for reuse; at 50M events this lowers the data step's peak by about a gigabyte
        con.execute("set allocator_background_threads = true")
    return con


def _current_fingerprint(con: Any, tenant: str) -> str | None:
    from recframe.datasource.warehouse import ensure_raw_tables

    ensure_raw_tables(con)
    row = con.execute(
        "select fingerprint from raw.loads where tenant = ? order by etl_timestamp desc, etl_id desc limit 1",
        [tenant],
    ).fetchall()
    return row[0][0] if row else None


def load_quality(cur: Any, tenant: str, etl_id: str, source_rows: int | None, tables: dict[str, str]) -> dict[str, Any]:
    """Row accounting of the current load on any warehouse: rows in = accepted + quarantined (by reason).

    ``cur`` is a DB-API cursor or a DuckDB connection; ``tables`` names the qualified ``events``,
    ``rejects`` (raw), ``sessions`` (``int_sessions``) and ``quarantine`` tables. ``source_rows``:
    an in-place source's row count (its fingerprint), else the ingested load's raw rows are counted.
    """
    if source_rows is not None:
        raw_rows = source_rows
    else:
        raw_rows = cur.execute(
            f"select (select count(*) from {tables['events']} where etl_id = ?) + "
            f"(select count(*) from {tables['rejects']} where etl_id = ?)",
            [etl_id, etl_id],
        ).fetchall()[0][0]
    accepted = cur.execute(
        f"select coalesce(sum(n_events), 0) from {tables['sessions']} where tenant = ? and reject_reason is null",
        [tenant],
    ).fetchall()[0][0]
    reasons = {
        str(reason): int(n)
        for reason, n in cur.execute(
            f"select reason, sum(n_rows) from {tables['quarantine']} where tenant = ? group by reason order by reason",
            [tenant],
        ).fetchall()
    }
    return row_accounting(raw_rows, accepted, reasons)


def row_accounting(raw_rows: int, accepted: int, reasons: dict[str, int]) -> dict[str, Any]:
    """The data stats that prove every input row is accounted for: rows in = accepted + quarantined."""
    quarantined = int(sum(reasons.values()))
    return {
        "raw_rows": int(raw_rows),
        "accepted": int(accepted),
        "quarantined": quarantined,
        "quarantine_reasons": {str(k): int(n) for k, n in reasons.items()},
        "rows_accounted": int(raw_rows) == int(accepted) + quarantined,
    }
