"""The embedded default data source: raw events -> DuckDB file -> dbt build -> one query -> split.

``load(work_dir)`` runs the whole data step with no network and no account:

1. **ingest** raw events (generated, or a file in a known/custom format) into the append-only raw
   tables of a persistent DuckDB file (skipped when the same input is already the current load);
2. **dbt build** the packaged project in-process (models and tests; a failing test raises
   :class:`~recframe.interfaces.DataError` naming it, so the pipeline stops before training);
3. **query** the ``session_sequences`` mart once for the date window and minimum length, and
4. **split** by time (:mod:`recframe.datasource.split`), writing ``lineage.json`` for the report.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recframe import validation as v
from recframe.datasource.formats import FORMAT_NAMES, RawFormat, resolve_format
from recframe.datasource.split import DAY_MS, TARGET_MODES, mark_targets
from recframe.interfaces import ConfigError, DataError, Dataset, DataSource

DEFAULT_ACTIONS = ("detail", "add", "purchase")
KNOWN_ACTIONS = ("detail", "add", "purchase", "remove", "fav")
_DATE_RE = r"^\d{4}-\d{2}-\d{2}$"


def _as_dict(value: Any, key: str) -> dict[str, Any]:
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

        self.raw = _as_dict(raw, "datasource.raw")
        v.choice("datasource.raw.format", self.raw.get("format", "synthetic"), FORMAT_NAMES)
        self.format: RawFormat = resolve_format(self.raw)
        if self.format.name != "synthetic" and not self.raw.get("path"):
            raise ConfigError("datasource.raw.path", self.raw.get("path"), f"is required for format {self.format.name}")

        syn = _as_dict(synthetic, "datasource.synthetic")
        self.synthetic = {
            "n_sessions": v.integer("datasource.synthetic.n_sessions", syn.get("n_sessions", 25_000), 10),
            "n_items": v.integer("datasource.synthetic.n_items", syn.get("n_items", 1_500), 10),
            "n_days": v.integer("datasource.synthetic.n_days", syn.get("n_days", 28), 2),
            "seed": v.integer("datasource.synthetic.seed", syn.get("seed", 42)),
        }
        extra = sorted(set(syn) - set(self.synthetic))
        for k in extra:  # the generator's other knobs (follow_prob, mean_length, ...) pass through
            self.synthetic[k] = syn[k]

        dbt_cfg = _as_dict(dbt, "datasource.dbt")
        self.dbt_runner = v.choice("datasource.dbt.runner", dbt_cfg.get("runner", "local"), ["local"])
        self.dbt_vars = validate_dbt_vars(_as_dict(dbt_cfg.get("vars"), "datasource.dbt.vars"))
        self.dbt_project_dir = Path(dbt_cfg["project_dir"]) if dbt_cfg.get("project_dir") else None
        self.split = validate_split(_as_dict(split, "datasource.split"))

    # ------------------------------------------------------------------------------------------------
    def check(self) -> None:
        """Fail fast when an input file is missing (the warehouse itself is created on demand)."""
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

        t0, c0 = time.perf_counter(), time.process_time()
        # dbt's import and project parse (~8 s of single-threaded Python on a fresh warehouse) need
        # no data: they run in a thread while DuckDB ingests (which releases the GIL), and the build
        # then starts from the saved parse (dbt's partial parsing, same vars and target)
        parse = threading.Thread(target=self._parse_quietly, args=(work_dir,), name="recframe-dbt-parse", daemon=True)
        parse.start()
        con = _connect(self.warehouse)
        try:
            load = self._ingest(con, ingest)
        finally:
            con.close()
        self.timings["ingest_s"] = round(time.perf_counter() - t0, 3)
        self.timings["ingest_cpu_s"] = round(time.process_time() - c0, 3)

        t0, c0 = time.perf_counter(), time.process_time()
        parse.join()
        self._dbt(["build"], work_dir)
        transform.write_lineage(work_dir / "target", work_dir / "lineage.json")
        self.timings["dbt_s"] = round(time.perf_counter() - t0, 3)
        self.timings["dbt_cpu_s"] = round(time.process_time() - c0, 3)
        return load

    def generate_docs(self, work_dir: Path) -> Path:
        """``dbt docs generate`` against the warehouse; returns the folder holding ``index.html``."""
        work_dir = Path(work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        state = self._dbt(["docs", "generate"], work_dir)
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
        return {"sessionize_by_user": bool(self.format.mapping.get("user_key")), **self.dbt_vars}

    def _parse_quietly(self, work_dir: Path) -> None:
        """``dbt parse`` ahead of the build; a failure here is left for the build to report."""
        with contextlib.suppress(Exception):  # the build parses again and raises the one-line error
            self._dbt(["parse"], work_dir, collect=False)

    def _dbt(self, args: list[str], work_dir: Path, collect: bool = True) -> Path:
        """Run dbt on the synced project with recframe's vars; return dbt's (persistent) target dir."""
        from recframe.datasource import transform

        # absolute: dbt resolves a relative --target-path against the project dir, not the cwd
        state = self.warehouse.resolve().parent / f".{self.warehouse.name}.dbt"
        project = transform.prepare_project(state, self.dbt_project_dir)
        dbt_vars = {**self.project_vars(), "tenant": self.tenant, "duckdb_path": str(self.warehouse.resolve())}
        try:
            transform.run_dbt(args, project, work_dir, vars=dbt_vars, target="duckdb", target_dir=state / "target")
        finally:
            if collect:
                transform.collect_artifacts(state / "target", work_dir)
        return state / "target"

    def load(self, work_dir: Path) -> Dataset:
        """Ingest, build with dbt, query and split; see the module docstring."""
        work_dir = Path(work_dir)
        load = self.build(work_dir)
        timings = self.timings

        t0, c0 = time.perf_counter(), time.process_time()
        con = _connect(self.warehouse, preserve_order=True)
        try:
            quality = self._quality(con, load.etl_id)
            train, valid, test, split_stats = self._query_split(con)
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
            "etl_id": load.etl_id,
            "ingest_skipped": load.skipped,
            **quality,
            **split_stats,
            "timings": timings,
        }
        return Dataset(train=train, valid=valid, test=test, stats=stats, items=items)

    # ------------------------------------------------------------------------------------------------
    def _ingest(self, con: Any, ingest: Any) -> Any:
        from recframe.datasource.warehouse import fingerprint_files, fingerprint_params, relation_sql

        if self.format.name == "synthetic":
            from recframe.datasource.synthetic import generate_events

            fp = fingerprint_params({"synthetic": self.synthetic, "generator": 1})
            # generate only when needed: an unchanged input is already the current load
            current = _current_fingerprint(con, self.tenant)
            if current == fp:
                return ingest(con, "", self.format, self.tenant, fp)
            data = generate_events(**self.synthetic)
            return ingest(con, data.events, self.format, self.tenant, fp, items=data.catalogue, source="synthetic")
        path = Path(self.raw["path"])
        items_path = self.raw.get("items_path")
        fp = fingerprint_files(path, items_path, extra={"format": self.format.name, "raw": self.raw})
        items_sql = None
        if items_path:
            items_sql = (
                f"(select product_sku_hash, category_hash, price_bucket from "
                f"read_csv('{str(items_path).replace(chr(39), chr(39) * 2)}', all_varchar = true, header = true))"
            )
        return ingest(
            con, relation_sql(path, self.format), self.format, self.tenant, fp, items=items_sql, source=str(path)
        )

    def _query_split(self, con: Any) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
        """The query and the time split, in SQL (see :mod:`recframe.datasource.split` for the rules).

        Sessions of the date window with at least ``min_length`` kept events are labelled train /
        valid / test by their start and end times (straddlers dropped), then each split is unnested to
        long format. Items unseen in train are removed from valid/test in SQL too, so that pandas
        only receives the final frames: at 10M events this is several times faster than splitting
        in pandas.
        """
        s = self.split
        where = ["tenant = ?", "length >= ?"]
        params: list[Any] = [self.tenant, s["min_length"]]
        for key, op in (("start_date", ">="), ("end_date", "<")):
            if s[key]:
                where.append(f"session_start {op} cast(? as timestamp)")
                params.append(s[key])
        window = " and ".join(where)
        # bounds first (no lists read), then ONE ordered copy of the window's sessions with their labels
        n_sessions, t_end = con.execute(
            f"select count(*), max(session_end_ms) from main.session_sequences where {window}", params
        ).fetchall()[0]
        if not n_sessions:
            raise DataError(
                f"no sessions for tenant {self.tenant!r} with >= {s['min_length']} events in the date window"
            )
        test_cut = int(t_end) - int(s["test_days"] * DAY_MS)
        valid_cut = test_cut - int(s["valid_days"] * DAY_MS)
        con.execute(
            f"""create or replace temp table _recframe_labels as
            select session_id, session_start_ms as s, session_end_ms as e, length, items, timestamps, actions,
                   case when session_start_ms >= {test_cut} then 'test'
                        when session_start_ms >= {valid_cut} and session_end_ms < {test_cut} then 'valid'
                        when session_end_ms < {valid_cut} then 'train' end as split
            from main.session_sequences
            where {window}""",
            params,
        )
        counts = dict(
            con.execute("select coalesce(split, 'straddling'), count(*) from _recframe_labels group by 1").fetchall()
        )
        # leakage guards, on the labels (cheap): disjoint by construction, and ordered in time
        bounds = {
            k: (lo, hi)
            for k, lo, hi in con.execute(
                "select split, min(s), max(e) from _recframe_labels where split is not null group by split"
            ).fetchall()
        }
        if "train" not in bounds:
            raise DataError(
                f"train split is empty: test_days={s['test_days']} + valid_days={s['valid_days']} cover all the data"
            )
        if "test" not in bounds:
            raise DataError(f"test split is empty: no session starts in the last test_days={s['test_days']}")
        if bounds["train"][1] >= bounds["test"][0] or (
            "valid" in bounds and (bounds["valid"][1] >= bounds["test"][0] or bounds["train"][1] >= bounds["valid"][0])
        ):
            raise DataError("split leakage: a later split starts before an earlier one ends")

        unseen_sql = ""
        n_known = None
        if s["drop_unseen"]:
            con.execute(
                """create or replace temp table _recframe_known as
                select distinct unnest(items) as item_id from _recframe_labels where split = 'train'"""
            )
            unseen_sql = "where item_id in (select item_id from _recframe_known)"
            n_known = con.execute("select count(*) from _recframe_known").fetchall()[0][0]
        frames: dict[str, pd.DataFrame] = {}
        stats: dict[str, Any] = {
            "query": {"sessions": int(n_sessions), "events": None},
            "straddling_dropped": int(counts.get("straddling", 0)),
            "test_cut_ms": test_cut,
            "valid_cut_ms": valid_cut,
        }
        total_events = 0
        session_ids: np.ndarray | None = None
        session_rank = np.empty(0, dtype=np.int64)
        for name in ("train", "valid", "test"):
            base = f"""
                select session_id, unnest(items) as item_id, unnest(timestamps) as ts,
                       unnest(actions) as action, generate_subscripts(items, 1) as pos
                from _recframe_labels where split = '{name}'"""
            total_events += con.execute(
                f"select coalesce(sum(length), 0) from _recframe_labels where split = '{name}'"
            ).fetchall()[0][0]
            if name == "train" or not unseen_sql:
                # Each event carries its session's row number in the labels table, not its id: the
                # ids are fetched once (one Python str per session) and expanded with a numpy take,
                # instead of copying a 64-character string per event through Arrow and hashing it
                # back into shared strings. Sessions are put in id order the same way: DuckDB sorts
                # only (id, row number), and the events, which unnest emits session by session,
                # are permuted by whole sessions in numpy; sorting the labels with their lists
                # (one wide ORDER BY) cost several times more at 10M events.
                if session_ids is None:
                    session_ids, session_rank = _session_order(con, "_recframe_labels")
                cols = _arrays_from_arrow(
                    con.sql(
                        "select rowid as session_row, unnest(items) as item_id, unnest(timestamps) as ts, "
                        f"unnest(actions) as action from _recframe_labels where split = '{name}'"
                    )
                )
                rows = np.asarray(cols.pop("session_row"), dtype=np.int64)  # int64 even when empty
                order = _by_session_rank(rows, session_rank)
                if order is not None:
                    rows = rows[order]
                    cols = {c: values[order] for c, values in cols.items()}
                frame = _frame({"session_id": session_ids[rows], **cols})
            else:
                sql = f"""select session_id, item_id, ts, action from ({base}) {unseen_sql}
                          qualify count(*) over (partition by session_id) >= {int(s["min_length"])}
                          order by session_id, pos"""
                frame = _frame_from_arrow(con.sql(sql))
            if not _is_sorted(frame):  # a guard: should DuckDB ever reorder, sort here instead
                frame = frame.sort_values(["session_id", "ts"], kind="stable").reset_index(drop=True)
            frames[name] = frame
            if name != "train" and unseen_sql:
                kept_events = len(frames[name])
                all_events = con.execute(
                    f"select coalesce(sum(length), 0), count(*) from _recframe_labels where split = '{name}'"
                ).fetchall()[0]
                n_after = _n_sessions(frames[name])
                removed_items = con.execute(
                    f"select count(*) from ({base}) where item_id not in (select item_id from _recframe_known)"
                ).fetchall()[0][0]
                stats[f"{name}_unseen"] = {
                    "unseen_dropped": int(removed_items),
                    "short_sessions_dropped": int(all_events[1] - n_after),
                    "events_dropped": int(all_events[0] - kept_events),
                }
        stats["query"]["events"] = int(total_events)
        for table in ("_recframe_labels", "_recframe_known"):
            con.execute(f"drop table if exists {table}")
        stats["targets"] = {"mode": s["targets"]}
        for name, frame in frames.items():
            if frame["ts"].dtype != np.int64:  # astype copies even when the dtype already matches
                frame["ts"] = frame["ts"].astype("int64")
            # train's distinct items are exactly the known-items table (no re-hashing of the ids)
            stats[name] = _describe_sorted(frame, n_known if name == "train" else None)
            if name != "train":
                frames[name], stats["targets"][name] = mark_targets(frame, s["targets"])
        return frames["train"], frames["valid"], frames["test"], stats

    def _items(self, con: Any) -> pd.DataFrame:
        return con.execute(
            "select sku as item_id, category, price_bucket, n_events from main.items "
            "where tenant = ? order by n_events desc, sku",
            [self.tenant],
        ).df()

    def _quality(self, con: Any, etl_id: str) -> dict[str, Any]:
        """Row accounting of the current load: rows in = accepted + quarantined (by reason)."""
        raw_rows = con.execute(
            "select (select count(*) from raw.events where etl_id = $1) + (select count(*) from raw.rejects "
            "where etl_id = $1)",
            [etl_id],
        ).fetchall()[0][0]
        accepted = con.execute(
            "select coalesce(sum(n_events), 0) from main.int_sessions where tenant = ? and reject_reason is null",
            [self.tenant],
        ).fetchall()[0][0]
        reasons = dict(
            con.execute(
                "select reason, sum(n_rows) from main.quarantine where tenant = ? group by reason order by reason",
                [self.tenant],
            ).fetchall()
        )
        return row_accounting(raw_rows, accepted, reasons)


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
    return con


def _frame_from_arrow(source: Any, batch_rows: int = 1_000_000) -> pd.DataFrame:
    """An event frame from an Arrow result (see :func:`_arrays_from_arrow`)."""
    return _frame(_arrays_from_arrow(source, batch_rows))


def _arrays_from_arrow(source: Any, batch_rows: int = 1_000_000) -> dict[str, np.ndarray]:
    """The columns of an Arrow result as numpy arrays, with one Python ``str`` per distinct value per batch.

    ``.df()`` would create a new string object per row: 7.7M rows of 64-character ids cost ~1.8 GB.
    Dictionary-encoding each Arrow batch and expanding its categories with ``take`` makes the rows
    share one object per distinct id (plain object columns, so consumers see ordinary strings), and
    reading batch by batch keeps only one batch of Arrow strings in memory at a time.
    """
    import pyarrow as pa

    if hasattr(source, "to_arrow_reader"):  # a DuckDB relation: stream it
        batches = source.to_arrow_reader(batch_rows)
    else:
        batches = source.to_batches() if hasattr(source, "to_batches") else source
    parts: dict[str, list[np.ndarray]] = {}
    names: list[str] | None = None
    for batch in batches:
        names = batch.schema.names
        for i, name in enumerate(names):
            col = batch.column(i)
            if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                enc = col.dictionary_encode()
                # one trailing None category stands for nulls
                categories = np.asarray([*enc.dictionary.to_pylist(), None], dtype=object)
                codes = enc.indices.fill_null(len(categories) - 1).to_numpy(zero_copy_only=False)
                values = categories[codes]
            else:
                values = col.to_numpy(zero_copy_only=False)
            parts.setdefault(name, []).append(values)
    if names is None:
        schema = getattr(batches, "schema", None)
        cols = schema.names if schema is not None else []
        return {c: np.asarray([], dtype=object) for c in cols}
    return {name: np.concatenate(parts.pop(name)) for name in names}


def _frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """A frame over the arrays themselves, one block per column: ``pd.DataFrame(dict)`` would stack
    the object columns into one 2-D block and column assignment copies, each a pass over every
    pointer (~0.2-0.4 s per million rows)."""
    if not columns:
        return pd.DataFrame()
    series = [pd.Series(values, name=name, copy=False) for name, values in columns.items()]
    return pd.concat(series, axis=1, copy=False)


def _session_order(con: Any, table: str) -> tuple[np.ndarray, np.ndarray]:
    """Session ids of ``table`` indexed by rowid, and each row's rank in session-id order.

    Only the narrow (id, rowid) pairs are sorted; the rows' lists never move.
    """
    ids = con.execute(f"select session_id from {table} order by rowid").fetchnumpy()["session_id"]
    ids = np.asarray(ids, dtype=object)
    by_id = con.execute(f"select rowid from {table} order by session_id").fetchnumpy()["rowid"]
    rank = np.empty(len(ids), dtype=np.int64)
    rank[np.asarray(by_id, dtype=np.int64)] = np.arange(len(ids), dtype=np.int64)
    return ids, rank


def _by_session_rank(rows: np.ndarray, rank: np.ndarray) -> np.ndarray | None:
    """Permutation putting events (``rows``: their session's rowid) in session-rank order.

    Events of a session arrive contiguously and in list order (unnest); whole runs are moved, so
    the order inside a session is kept. Returns None when the events are already in order.
    Should the runs ever not be contiguous, a stable argsort on the ranks gives the same order.
    """
    n = len(rows)
    if n == 0:
        return None
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    run_rows = rows[starts]
    run_rank = rank[run_rows]
    if bool((np.bincount(run_rows, minlength=len(rank)) > 1).any()):  # a session in several runs
        return np.argsort(rank[rows], kind="stable")
    if len(run_rank) < 2 or bool((run_rank[1:] > run_rank[:-1]).all()):
        return None
    lengths = np.diff(np.r_[starts, n])
    by_rank = np.argsort(run_rank)
    new_starts = starts[by_rank]
    new_lengths = lengths[by_rank]
    # event i of the output is the (i - first output position of its run)-th event of its run
    offsets = np.repeat(new_starts - (np.cumsum(new_lengths) - new_lengths), new_lengths)
    return offsets + np.arange(n, dtype=np.int64)


def _is_sorted(frame: pd.DataFrame) -> bool:
    """Sorted by session id, and by time inside each session (vectorised, no hashing)."""
    if len(frame) < 2:
        return True
    sid = frame["session_id"].to_numpy()
    ts = frame["ts"].to_numpy()
    same = sid[1:] == sid[:-1]
    return bool((same | (sid[1:] > sid[:-1])).all() and (~same | (ts[1:] >= ts[:-1])).all())


def _n_sessions(frame: pd.DataFrame) -> int:
    """Sessions in a frame sorted by session id (boundaries, no hashing)."""
    if frame.empty:
        return 0
    sid = frame["session_id"].to_numpy()
    return int((sid[1:] != sid[:-1]).sum()) + 1


def _describe_sorted(frame: pd.DataFrame, n_items: int | None = None) -> dict[str, Any]:
    """Counts and time range of a sorted frame (``n_items``: the distinct items, when already known)."""
    out: dict[str, Any] = {"sessions": _n_sessions(frame), "events": len(frame), "items": 0}
    if len(frame):
        out["items"] = int(n_items) if n_items is not None else int(len(pd.unique(frame["item_id"].to_numpy())))
        out["start"] = pd.Timestamp(int(frame["ts"].min()), unit="ms").isoformat()
        out["end"] = pd.Timestamp(int(frame["ts"].max()), unit="ms").isoformat()
    return out


def _current_fingerprint(con: Any, tenant: str) -> str | None:
    from recframe.datasource.warehouse import ensure_raw_tables

    ensure_raw_tables(con)
    row = con.execute(
        "select fingerprint from raw.loads where tenant = ? order by etl_timestamp desc, etl_id desc limit 1",
        [tenant],
    ).fetchall()
    return row[0][0] if row else None


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
