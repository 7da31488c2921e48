"""Batch recommendations: score sessions with a run's artifact and write them to the warehouse.

Which sessions: ``score.sessions=latest_per_user`` (default) keeps the latest session of every user
where the source has users (sessions without a user are each scored on their own; a source without
users therefore gets every session of the window), ``window`` keeps every session starting in
``[score.start_date, score.end_date)``. On DuckDB they are read from the ``session_sequences`` mart
(users from the staged events, when those carry a user key); other sources score the sessions of
the run's splits.

How: the deployer's :class:`~recframe.deployer.predictor.Predictor` ranks the sessions in batches
(one ``score_next`` and one top-k per batch; a sequence model on CPU reads the states of many
batches at once and scores them in row blocks on parallel workers, see
:mod:`recframe.deployer.score_blocks`), with the endpoint's settings (``exclude_seen``), so the
table holds what the endpoint would answer. The rows replace that run's previous rows in one
transaction (:meth:`~recframe.warehouse_writer.WarehouseWriter.replace_rows`).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from recframe import validation as v
from recframe.interfaces import ConfigError, DataError
from recframe.warehouse_writer import RECOMMENDATIONS, RECOMMENDATIONS_DDL, WarehouseWriter, ensure_tables

log = logging.getLogger("recframe")
SESSION_MODES = ("latest_per_user", "window")
_DATE = r"^\d{4}-\d{2}-\d{2}$"


@dataclass(frozen=True)
class ScoreSettings:
    """The ``score`` block of the config."""

    sessions: str = "latest_per_user"
    start_date: str | None = None
    end_date: str | None = None
    k: int = 20
    exclude_seen: bool = True
    batch_size: int = 1024
    warehouse: str | None = None

    @classmethod
    def from_config(cls, block: Mapping[str, Any] | None) -> ScoreSettings:
        import re

        b = dict(block or {})
        unknown = sorted(set(b) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(
                f"score.{unknown[0]}", b[unknown[0]], f"unknown key; known: {', '.join(cls.__dataclass_fields__)}"
            )
        for key in ("start_date", "end_date"):
            if b.get(key) not in (None, "") and not re.match(_DATE, str(b[key])):
                raise ConfigError(f"score.{key}", b[key], "must be a date YYYY-MM-DD or null")
        return cls(
            sessions=v.choice("score.sessions", b.get("sessions", "latest_per_user"), SESSION_MODES),
            start_date=str(b["start_date"]) if b.get("start_date") else None,
            end_date=str(b["end_date"]) if b.get("end_date") else None,
            k=v.integer("score.k", b.get("k", 20), 1, 1000),
            exclude_seen=v.boolean("score.exclude_seen", b.get("exclude_seen", True)),
            batch_size=v.integer("score.batch_size", b.get("batch_size", 1024), 1),
            warehouse=str(b["warehouse"]) if b.get("warehouse") else None,
        )


def _ms(date: str | None) -> int | None:
    if not date:
        return None
    return int(datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=UTC).timestamp() * 1000)


def latest_per_user(sessions: pd.DataFrame) -> pd.DataFrame:
    """Per user the session that ended last; sessions without a user are all kept."""
    anon = sessions[sessions["user_key"].isna()]
    known = sessions[sessions["user_key"].notna()]
    if len(known):
        known = known.sort_values(["user_key", "end_ms", "session_key"]).drop_duplicates("user_key", keep="last")
    return pd.concat([known, anon], ignore_index=True)


def warehouse_sessions(con: Any, tenant: str, start_ms: int | None, end_ms: int | None) -> pd.DataFrame | None:
    """The tenant's sessions from DuckDB's ``session_sequences`` mart, or None when it is missing."""

    def columns(table: str) -> set[str]:
        rows = con.execute(
            "select column_name from information_schema.columns where table_schema = 'main' and table_name = ?",
            [table],
        ).fetchall()
        return {r[0] for r in rows}

    seq = columns("session_sequences")
    if not {"tenant", "session_id", "session_start_ms", "session_end_ms", "items"} <= seq:
        return None
    users = "null::varchar"
    join = ""
    if {"tenant", "session_key", "user_key"} <= columns("stg_events__raw_events"):
        join = (
            "left join (select tenant, session_key, max(user_key) as user_key from main.stg_events__raw_events "
            "where tenant = $tenant and user_key is not null and session_key is not null group by all) u "
            "on u.tenant = s.tenant and u.session_key = s.session_id"
        )
        users = "u.user_key"
    where = ["s.tenant = $tenant"]
    params: dict[str, Any] = {"tenant": tenant}
    if start_ms is not None:
        where.append("s.session_start_ms >= $start")
        params["start"] = start_ms
    if end_ms is not None:
        where.append("s.session_start_ms < $end")
        params["end"] = end_ms
    sql = (
        f"select s.session_id as session_key, {users} as user_key, s.session_end_ms as end_ms, s.items "
        f"from main.session_sequences s {join} where {' and '.join(where)} order by s.session_id"
    )
    return con.execute(sql, params).df()


def split_sessions(data_dir: str | Path, start_ms: int | None, end_ms: int | None) -> pd.DataFrame:
    """Sessions of the run's splits (train, valid, test) as item lists, when no mart can be read."""
    d = Path(data_dir)
    frames = [
        pd.read_parquet(d / f"{n}.parquet", columns=["session_id", "item_id", "ts"])
        for n in ("train", "valid", "test")
        if (d / f"{n}.parquet").exists()
    ]
    if not frames:
        raise DataError(f"no split files in {d}: run the 'data' step first")
    ev = pd.concat(frames, ignore_index=True).sort_values(["session_id", "ts"], kind="stable")
    g = ev.groupby("session_id", sort=True, observed=True)
    out = pd.DataFrame({"start": g["ts"].min(), "end_ms": g["ts"].max(), "items": g["item_id"].agg(list)})
    if start_ms is not None:
        out = out[out["start"] >= start_ms]
    if end_ms is not None:
        out = out[out["start"] < end_ms]
    out = out.reset_index().rename(columns={"session_id": "session_key"})
    out["user_key"] = None
    return out[["session_key", "user_key", "end_ms", "items"]]


def select_sessions(settings: ScoreSettings, tenant: str, data_dir: Path, con: Any = None) -> tuple[pd.DataFrame, str]:
    """The sessions to score and where they came from (``mart`` or ``splits``)."""
    start, end = _ms(settings.start_date), _ms(settings.end_date)
    frame = warehouse_sessions(con, tenant, start, end) if con is not None else None
    origin = "mart"
    if frame is None:
        frame, origin = split_sessions(data_dir, start, end), "splits"
    if settings.sessions == "latest_per_user":
        frame = latest_per_user(frame)
    return frame.reset_index(drop=True), origin


def length_batches(lengths: list[int], batch_size: int, steps_per_session: int = 16) -> list[np.ndarray]:
    """Indices of sessions in batches of similar lengths, at most ``batch_size`` sessions each.

    A sequence model runs every session of a batch for as many steps as the longest one, so a few
    long sessions in a batch of short ones multiply the recurrent work. Sorted by length, a batch
    also holds no more than ``batch_size * steps_per_session`` padded positions: long sessions go
    in smaller batches and the work stays close to the total number of events.
    """
    order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")
    budget = batch_size * steps_per_session
    batches, start = [], 0
    for pos in range(1, len(order) + 1):
        size = pos - start
        full = size == batch_size or pos == len(order)
        if full or (size + 1) * max(lengths[order[pos]], 1) > budget:
            batches.append(order[start:pos])
            start = pos
    return batches


def encode_items(vocab: Any, items: pd.Series) -> list[np.ndarray]:
    """Each session's known SKUs as vocabulary indices, in order (unknown SKUs dropped), in one pass."""
    lengths = items.map(len).to_numpy(dtype=np.int64)
    flat = pd.Series(list(itertools.chain.from_iterable(items)), dtype=object)
    codes = vocab.encode_column(flat) if len(flat) else np.zeros(0, dtype=np.int64)
    known = codes >= 0
    owner = np.repeat(np.arange(len(lengths)), lengths)
    counts = np.bincount(owner[known], minlength=len(lengths))
    kept, ends = codes[known], np.cumsum(counts)
    # slices of one array: np.split would cost several times more per session
    return [kept[a:b] for a, b in zip((ends - counts).tolist(), ends.tolist(), strict=True)]


def recommend(
    model: Any, sessions: pd.DataFrame, settings: ScoreSettings, tenant: str, version: str, run_id: str
) -> pa.Table:
    """Rank ``sessions`` in batches; one row per (session, rank) in the ``recommendations`` layout.

    The rows come out batch by batch (sessions of similar lengths together), each session's ranks in
    order. Repeated strings (SKUs, session keys, the run's constants) are Arrow dictionaries over the
    vocabulary and the session list, so no Python string is made per row.
    """
    from recframe.deployer.predictor import Predictor, ServingLimits

    limits = ServingLimits(default_k=settings.k, max_k=max(settings.k, 1000), exclude_seen=settings.exclude_seen)
    predictor = Predictor(model, limits)
    encoded = encode_items(model.vocab, sessions["items"])
    # sessions of similar lengths together (a padded sequence model runs each batch as long as its
    # longest session); each session's ranks in order
    lengths = sessions["items"].map(len).tolist()
    order = np.concatenate([np.zeros(0, np.int64), *length_batches(lengths, settings.batch_size)])
    ranked = predictor.rank([encoded[i] for i in order], settings.k, settings.exclude_seen, chunk=settings.batch_size)
    keep = np.arange(ranked.indices.shape[1])[None, :] < ranked.lengths[:, None]
    rows = np.repeat(order, ranked.lengths)
    ranks = np.broadcast_to(np.arange(1, ranked.indices.shape[1] + 1, dtype=np.int32), keep.shape)[keep]
    codes, scores = ranked.indices[keep], ranked.values[keep]
    n = len(rows)
    scored_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)

    def const(value: str) -> pa.Array:
        return pa.DictionaryArray.from_arrays(np.zeros(n, dtype=np.int32), pa.array([value], pa.string()))

    skus = pa.array(model.vocab.items.tolist(), pa.string())
    user_keys = sessions["user_key"]
    users = (pa.nulls(len(user_keys), pa.string()) if user_keys.isna().all()  # a source without users
             else pa.array([None if pd.isna(u) else str(u) for u in user_keys], pa.string()))  # fmt: skip
    return pa.table(
        {
            "tenant": const(tenant),
            "session_key": pa.DictionaryArray.from_arrays(
                rows.astype(np.int32), pa.array(sessions["session_key"].astype(str), pa.string())
            ),
            "user_key": users.take(pa.array(rows)),
            "rank": pa.array(ranks, pa.int32()),
            "sku": pa.DictionaryArray.from_arrays(codes.astype(np.int32), skus),
            "score": pa.array(scores.astype(np.float64)),
            "model_version": const(version),
            "run_id": const(run_id),
            "scored_at": pa.array(np.full(n, np.datetime64(scored_at, "us"))),
        }
    )


def score_run(
    ctx: Any,
    settings: ScoreSettings,
    writer: WarehouseWriter | None = None,
    before_swap: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Score the run of ``ctx`` (a :class:`~recframe.run_context.RunContext`) and write its rows."""
    from recframe.artifact import load_model
    from recframe.registry import model_version
    from recframe.warehouse_writer import DuckDBWriter, writer_for

    t0 = time.perf_counter()
    model_dir = ctx.model_dir
    model = load_model(model_dir)
    version = model_version(model_dir)
    own = writer is None
    writer = writer or writer_for(ctx.datasource, settings.warehouse)
    try:
        con = writer.con if isinstance(writer, DuckDBWriter) and not settings.warehouse else None
        sessions, origin = select_sessions(settings, ctx.tenant, ctx.data_dir, con)
        if sessions.empty:
            raise DataError("no sessions to score: widen score.start_date/score.end_date")
        t1 = time.perf_counter()
        frame = recommend(model, sessions, settings, ctx.tenant, version, ctx.run_id)
        t2 = time.perf_counter()
        ensure_tables(writer)
        n = writer.replace_rows(
            RECOMMENDATIONS,
            RECOMMENDATIONS_DDL,
            frame,
            "tenant = ? and run_id = ?",
            [ctx.tenant, ctx.run_id],
            before_swap,
        )
        t3 = time.perf_counter()
    finally:
        if own:
            writer.close()
    summary = {
        "table": writer.table(RECOMMENDATIONS),
        "warehouse": writer.where,
        "sessions": int(len(sessions)),
        "rows": int(n),
        "sessions_from": origin,
        "model_version": version,
        "run_id": ctx.run_id,
        "seconds": {"read": round(t1 - t0, 3), "rank": round(t2 - t1, 3), "write": round(t3 - t2, 3)},
    }
    log.info("wrote %d recommendations for %d sessions to %s", n, len(sessions), summary["table"])
    return summary
