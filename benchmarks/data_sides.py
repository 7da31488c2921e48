"""The sides of the data benchmark: four ways to turn raw Coveo-style events into the same sessions.

Each side reads the same input (a CSV file, or a hive-partitioned Parquet lake) and returns the
train, valid and test splits that recframe's data step returns for the settings below. The rules
are recframe's (``dbt/models`` and ``recframe/datasource/session_query.py``), written once here in
words and then once per side:

1. **rows**: the session id has surrounding spaces removed and must be non-empty; the SKU is
   lower-cased and trimmed and must be non-empty; neither may hold U+FFFD (the mark of a bad
   decode); the timestamp must parse and lie at most ``FUTURE_TOLERANCE_H`` hours after the load;
2. **actions**: the event type (lower-cased, trimmed) ``pageview`` is a pageview; otherwise the
   product action (or, when blank, the event type) maps through :data:`ACTION_ALIASES`; only
   ``detail``, ``add`` and ``purchase`` are kept, ranked 1, 2, 4 for ordering ties;
3. **sessions**: exact duplicates of (session, timestamp, action, SKU) count once; a session keeps
   its events ordered by (timestamp, action rank, SKU) and is used when it has ``MIN_LENGTH`` to
   ``MAX_LENGTH`` of them (single events and bots out);
4. **split**: with ``t_end`` the last event of all sessions, sessions starting at or after
   ``t_end - TEST_DAYS`` are test, those starting ``VALID_DAYS`` before that and ending before the
   test cut are valid, those ending before the valid cut are train; the rest straddle a cut and
   are dropped. Items not seen in train leave valid and test, and sessions left shorter than
   ``MIN_LENGTH`` go too.

The output is compared in full by ``data_digest.session_digest``: for each split, every session's
id and its ordered items and timestamps, sessions sorted by id. Side functions import their
library inside, so that a side's process pays only for what it uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_digest import SPLITS

DAY_MS = 86_400_000
MIN_LENGTH = 2
MAX_LENGTH = 200
TEST_DAYS = 7
VALID_DAYS = 3
FUTURE_TOLERANCE_H = 24
#: the kept actions, each with the raw spellings that map to it and its tie-breaking rank
ACTION_ALIASES = {
    "detail": ("detail", "view", "pv", "click"),
    "add": ("add", "cart", "add_to_cart"),
    "purchase": ("purchase", "buy"),
}
ACTION_RANK = {"detail": 1, "add": 2, "purchase": 4}
#: Coveo's browsing_train columns the sides read (hashed_url is read by no side)
SESSION, EVENT_TYPE, ACTION, SKU, TS = (
    "session_id_hash",
    "event_type",
    "product_action",
    "product_sku_hash",
    "server_timestamp_epoch_ms",
)
BAD_CHAR = "\ufffd"


@dataclass(frozen=True)
class Input:
    """What every side reads: ``kind`` ``csv`` (one file) or ``lake`` (a folder of hive-partitioned
    Parquet files)."""

    kind: str
    path: Path

    def glob(self) -> str:
        """The lake's Parquet files as one glob (what ``datasource.raw.path`` takes in place)."""
        return f"{self.path}/**/*.parquet"


def future_limit_ms() -> int:
    """The latest timestamp a row may carry: the load time plus the tolerance."""
    return int(time.time() * 1000) + FUTURE_TOLERANCE_H * 3_600_000


def _alias_rank() -> dict[str, int]:
    return {alias: ACTION_RANK[name] for name, aliases in ACTION_ALIASES.items() for alias in aliases}


# ------------------------------------------------------------------------------------------ recframe


def recframe_overrides(inp: Input, work: Path) -> list[str]:
    """recframe's config for this benchmark, as command-line overrides (the rules above)."""
    path = str(inp.path) if inp.kind == "csv" else inp.glob()
    out = [
        "datasource=duckdb",
        f"datasource.warehouse='{work / 'warehouse.duckdb'}'",
        "datasource.raw.format=coveo",
        f"datasource.raw.path='{path}'",
        "datasource.dbt.vars.actions=[detail,add,purchase]",
        f"datasource.dbt.vars.max_session_length={MAX_LENGTH}",
        f"++datasource.dbt.vars.future_tolerance_hours={FUTURE_TOLERANCE_H}",
        f"datasource.split.test_days={TEST_DAYS}",
        f"datasource.split.valid_days={VALID_DAYS}",
        f"datasource.split.min_length={MIN_LENGTH}",
        "datasource.split.drop_unseen=true",
    ]
    if inp.kind == "lake":
        out.append("datasource.raw.mode=in_place")
    return out


class SideSkipped(Exception):
    """A side that cannot run here (its feature or library is missing); the message says why."""


def side_recframe(inp: Input, work: Path, memory_limit: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """recframe's data step, composed from its public config keys as ``python -m recframe`` would."""
    import os

    os.environ["RECFRAME_DUCKDB_MEMORY"] = memory_limit
    from recframe.app import compose, instantiate_group
    from recframe.interfaces import ConfigError

    try:
        cfg = compose(recframe_overrides(inp, work))
    except ConfigError as e:
        if inp.kind == "lake" and "mode" in str(e):
            raise SideSkipped(
                "this recframe does not know datasource.raw.mode (in-place reading is not in this checkout)"
            ) from None
        raise
    source = instantiate_group("datasource", cfg.datasource)
    if inp.kind == "lake" and getattr(source, "mode", "ingest") != "in_place":
        raise SideSkipped(
            "this recframe ignores datasource.raw.mode=in_place (in-place reading is not in this checkout)"
        )
    ds = source.load(work / "data")
    extras = {
        "steps": ds.stats.get("timings"),
        "quarantined": ds.stats.get("quarantined"),
        "rows_accounted": ds.stats.get("rows_accounted"),
    }
    return {"train": ds.train, "valid": ds.valid, "test": ds.test}, extras


# ------------------------------------------------------------------------------------------ DuckDB SQL


def trimmed(expr: str) -> str:
    """``trim(expr)``, computed only for the values that start or end with a space (trim allocates
    a new string per row; the test is cheap)."""
    return f"case when starts_with({expr}, ' ') or ends_with({expr}, ' ') then trim({expr}) else {expr} end"


def sessions_sql(relation: str, limit_ms: int) -> str:
    """The whole data step as one SQL query over ``relation``: ``split`` (0 train, 1 valid, 2 test),
    ``session_id``, ``item_id``, ``ts``, ordered by split, session and position. The rows are
    filtered on their action and time before their ids are normalised."""
    ranks = _alias_rank()
    action = "coalesce(nullif(trim(lower(product_action)), ''), trim(lower(event_type)))"
    cases = " ".join(f"when '{alias}' then {rank}" for alias, rank in ranks.items())
    test_ms, valid_ms = TEST_DAYS * DAY_MS, VALID_DAYS * DAY_MS
    return f"""
with ev as (
    select {trimmed("session_id_hash")} as session_id, {trimmed("lower(product_sku_hash)")} as item_id, ts, rank
    from (
        select session_id_hash, product_sku_hash, server_timestamp_epoch_ms as ts,
               case when trim(lower(event_type)) = 'pageview' then 0 else case {action} {cases} end end as rank
        from {relation}
    )
    where rank > 0 and ts <= {limit_ms}
),
kept as (
    select distinct session_id, ts, rank, item_id from ev
    where session_id <> '' and item_id <> ''
      and not contains(session_id, '{BAD_CHAR}') and not contains(item_id, '{BAD_CHAR}')
),
sessions as (
    select session_id, min(ts) as s0, max(ts) as s1 from kept group by session_id
    having count(*) between {MIN_LENGTH} and {MAX_LENGTH}
),
cuts as (select max(s1) - {test_ms} as test_cut, max(s1) - {test_ms + valid_ms} as valid_cut from sessions),
labels as (
    select session_id,
           case when s0 >= test_cut then 2 when s0 >= valid_cut and s1 < test_cut then 1
                when s1 < valid_cut then 0 end as split
    from sessions, cuts
),
labelled as (
    select k.*, l.split from kept as k join labels as l using (session_id) where l.split is not null
),
known as (select distinct item_id from labelled where split = 0),
later as (select * from labelled where split > 0 and item_id in (select item_id from known)),
long_enough as (select session_id from later group by session_id having count(*) >= {MIN_LENGTH})
select split, session_id, item_id, ts from (
    select * from labelled where split = 0
    union all
    select * from later where session_id in (select session_id from long_enough)
)
order by split, session_id, ts, rank, item_id
"""


def side_duckdb_sql(inp: Input, work: Path, memory_limit: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """One hand-written DuckDB query: the lower bound of what the data step can cost."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"set memory_limit = '{memory_limit}'")
    con.execute("set preserve_insertion_order = false")
    con.execute(f"set temp_directory = '{work / 'duckdb_tmp'}'")
    table = con.sql(sessions_sql(source_relation(inp), future_limit_ms())).to_arrow_table()
    con.close()
    return split_ordered(table), {}


def source_relation(inp: Input) -> str:
    """The input as a DuckDB table function (the CSV's columns typed as the file is known to be)."""
    if inp.kind == "lake":
        return f"read_parquet('{inp.glob()}', hive_partitioning = true)"
    types = {SESSION: "VARCHAR", EVENT_TYPE: "VARCHAR", ACTION: "VARCHAR", SKU: "VARCHAR", TS: "BIGINT"}
    columns = ", ".join(f"'{k}': '{v}'" for k, v in types.items())
    return f"read_csv('{inp.path}', header = true, columns = {{{columns}, 'hashed_url': 'VARCHAR'}})"


def split_ordered(table: Any) -> dict[str, Any]:
    """An Arrow table ordered by its integer ``split`` column, as one table per split (slices)."""
    import pyarrow.compute as pc

    counts = {int(v["values"]): int(v["counts"]) for v in pc.value_counts(table["split"]).to_pylist()}
    out, start = {}, 0
    for code, name in enumerate(SPLITS):
        n = counts.get(code, 0)
        out[name] = table.slice(start, n).drop_columns(["split"])
        start += n
    return out


# ------------------------------------------------------------------------------------------ Polars


def side_polars(inp: Input, work: Path, memory_limit: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Polars, lazy, collected once on the streaming engine."""
    try:
        import polars as pl
    except ImportError:
        raise SideSkipped("polars is not installed (pip install 'recframe[bench]')") from None

    if inp.kind == "csv":
        schema = {SESSION: pl.String, EVENT_TYPE: pl.String, ACTION: pl.String, SKU: pl.String, TS: pl.Int64}
        lf = pl.scan_csv(inp.path, schema_overrides=schema)
    else:
        lf = pl.scan_parquet(inp.glob(), hive_partitioning=True)
    event_type = pl.col(EVENT_TYPE).str.to_lowercase().str.strip_chars(" ")
    product_action = pl.col(ACTION).str.to_lowercase().str.strip_chars(" ")
    action = pl.coalesce(pl.when(product_action != "").then(product_action), event_type)
    ranks = _alias_rank()
    rank = pl.when(event_type == "pageview").then(0).otherwise(action.replace_strict(ranks, default=0))
    kept = (
        lf.select(
            session_id=pl.col(SESSION).str.strip_chars(" "),
            item_id=pl.col(SKU).str.to_lowercase().str.strip_chars(" "),
            ts=pl.col(TS),
            rank=rank.cast(pl.Int8),
        )
        .filter(
            (pl.col("rank") > 0)
            & (pl.col("session_id") != "")
            & (pl.col("item_id") != "")
            & (pl.col("ts") <= future_limit_ms())
            & ~pl.col("session_id").str.contains(BAD_CHAR, literal=True)
            & ~pl.col("item_id").str.contains(BAD_CHAR, literal=True)
        )
        .unique()
    )
    sessions = (
        kept.group_by("session_id")
        .agg(n=pl.len(), s0=pl.col("ts").min(), s1=pl.col("ts").max())
        .filter(pl.col("n").is_between(MIN_LENGTH, MAX_LENGTH))
    )
    test_cut = pl.col("s1").max() - TEST_DAYS * DAY_MS
    valid_cut = test_cut - VALID_DAYS * DAY_MS
    labels = sessions.select(
        "session_id",
        split=pl.when(pl.col("s0") >= test_cut)
        .then(2)
        .when((pl.col("s0") >= valid_cut) & (pl.col("s1") < test_cut))
        .then(1)
        .when(pl.col("s1") < valid_cut)
        .then(0)
        .cast(pl.Int8),
    ).drop_nulls("split")
    labelled = kept.join(labels, on="session_id")
    train = labelled.filter(pl.col("split") == 0)
    known = train.select("item_id").unique()
    later = (
        labelled.filter(pl.col("split") > 0)
        .join(known, on="item_id", how="semi")
        .filter(pl.len().over("session_id") >= MIN_LENGTH)
    )
    ordered = pl.concat([train, later]).sort("split", "session_id", "ts", "rank", "item_id")
    frame = ordered.select("split", "session_id", "item_id", "ts").collect(engine="streaming")
    return {name: frame.filter(pl.col("split") == code).drop("split") for code, name in enumerate(SPLITS)}, {}


# ------------------------------------------------------------------------------------------ pandas


def side_pandas(inp: Input, work: Path, memory_limit: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """pandas as a careful user writes it: categorical ids read straight from Arrow, the rules applied
    once per distinct value, integer codes for the sorting and grouping, no Python object per row."""
    import numpy as np
    import pandas as pd

    columns = [SESSION, EVENT_TYPE, ACTION, SKU, TS]
    if inp.kind == "csv":
        # Arrow's reader, as pd.read_csv(engine="pyarrow") uses, but dictionary-encoding the text
        # block by block: read_csv(dtype="category") holds every string first (629 vs 187 MB at 1M)
        import pyarrow as pa
        import pyarrow.csv as pacsv

        text = pa.dictionary(pa.int32(), pa.string())
        types = {c: text for c in columns[:4]} | {TS: pa.int64()}
        options = pacsv.ConvertOptions(include_columns=columns, column_types=types, strings_can_be_null=True)
        df = pacsv.read_csv(inp.path, convert_options=options).to_pandas()
    else:
        df = pd.read_parquet(inp.path, engine="pyarrow", columns=columns, read_dictionary=columns[:4])

    def normalised(column: pd.Series, lower: bool) -> tuple[np.ndarray, pd.Index]:
        """Codes into sorted, normalised categories (-1: blank or badly decoded), per distinct value."""
        values = pd.Series(column.cat.categories.astype(str))
        if lower:
            values = values.str.lower()
        values = values.str.strip(" ")
        values = values.where((values != "") & ~values.str.contains(BAD_CHAR, regex=False))
        codes, uniques = pd.factorize(values, sort=True)
        lookup = np.append(codes, -1).astype(np.int64)  # the category code -1 (null) stays -1
        return lookup[column.cat.codes.to_numpy()], uniques

    session, session_names = normalised(df[SESSION], lower=False)
    item, item_names = normalised(df[SKU], lower=True)
    # the action's rank from the (product action, event type) pair of categories
    event_types = pd.Series(df[EVENT_TYPE].cat.categories.astype(str)).str.lower().str.strip(" ")
    actions = pd.Series(df[ACTION].cat.categories.astype(str)).str.lower().str.strip(" ").replace("", None)
    ranks = _alias_rank()
    table = np.zeros((len(actions) + 1, len(event_types) + 1), dtype=np.int8)
    for a, act in enumerate([*actions, None]):
        for e, et in enumerate([*event_types, None]):
            if et != "pageview":
                table[a, e] = ranks.get(act if act is not None else et, 0)
    rank = table[df[ACTION].cat.codes.to_numpy(), df[EVENT_TYPE].cat.codes.to_numpy()]
    ts = df[TS].to_numpy(dtype="float64", na_value=np.nan)
    keep = (rank > 0) & (session >= 0) & (item >= 0) & (ts <= future_limit_ms())  # NaN compares False
    del df
    events = pd.DataFrame({"s": session[keep], "ts": ts[keep].astype(np.int64), "r": rank[keep], "i": item[keep]})
    events = events.sort_values(["s", "ts", "r", "i"], ignore_index=True)
    # exact duplicates are adjacent once sorted
    same = np.ones(max(len(events) - 1, 0), dtype=bool)
    for column in ("s", "ts", "r", "i"):
        values = events[column].to_numpy()
        same &= values[1:] == values[:-1]
    events = events[~np.r_[False, same]]

    stats = events.groupby("s", sort=False)["ts"].agg(["size", "min", "max"])
    stats = stats[(stats["size"] >= MIN_LENGTH) & (stats["size"] <= MAX_LENGTH)]
    test_cut = int(stats["max"].max()) - TEST_DAYS * DAY_MS
    valid_cut = test_cut - VALID_DAYS * DAY_MS
    split = np.select(
        [stats["min"] >= test_cut, (stats["min"] >= valid_cut) & (stats["max"] < test_cut), stats["max"] < valid_cut],
        [2, 1, 0],
        -1,
    )
    label = np.full(len(session_names), -1, dtype=np.int8)
    label[stats.index.to_numpy()] = split
    events["split"] = label[events["s"].to_numpy()]
    known = np.zeros(len(item_names), dtype=bool)
    known[events.loc[events["split"] == 0, "i"].to_numpy()] = True

    out = {}
    for code, name in enumerate(SPLITS):
        part = events[events["split"] == code]
        if code:
            part = part[known[part["i"].to_numpy()]]
            part = part[part.groupby("s", sort=False)["s"].transform("size") >= MIN_LENGTH]
        out[name] = pd.DataFrame(
            {
                "session_id": pd.Categorical.from_codes(part["s"].to_numpy(), categories=session_names),
                "item_id": pd.Categorical.from_codes(part["i"].to_numpy(), categories=item_names),
                "ts": part["ts"].to_numpy(),
            }
        )
    return out, {}


SIDES: dict[str, Callable[[Input, Path, str], tuple[dict[str, Any], dict[str, Any]]]] = {
    "recframe": side_recframe,
    "duckdb_sql": side_duckdb_sql,
    "polars": side_polars,
    "pandas": side_pandas,
}
