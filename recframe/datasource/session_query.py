"""The one query of the data step: sessions of the date window -> time split -> event frames.

DuckDB runs it on the warehouse itself (Snowflake runs the same rules in its own SQL,
:mod:`recframe.datasource.snowflake_split`). It reads only the
``session_sequences`` mart (and, where it carries item keys, the ``items`` mart's key -> SKU
table); the split rules are :mod:`recframe.datasource.split`'s. The helpers turn
Arrow results into pandas frames without one Python object per row (see :func:`arrays_from_arrow`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recframe.datasource.split import DAY_MS, mark_targets
from recframe.interfaces import DataError


def query_split(
    con: Any, tenant: str, split: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The query and the time split, in SQL (see :mod:`recframe.datasource.split` for the rules).

    ``con`` is a DuckDB connection holding ``main.session_sequences``; ``split`` is the validated
    settings of :func:`recframe.datasource.duckdb.validate_split`. Returns the train, valid
    and test frames (``session_id, item_id, ts, action``; valid/test with a ``target`` column) and
    the split's stats.

    Sessions of the date window with at least ``min_length`` kept events are labelled train /
    valid / test by their start and end times (straddlers dropped), then each split is unnested to
    long format. Items unseen in train are removed from valid/test in SQL too, so that pandas
    only receives the final frames: at 10M events this is several times faster than splitting
    in pandas.
    """
    s = split  # validated settings (short name: used in most lines below)
    window, params = window_clause(tenant, s, "cast(? as timestamp)")
    # DuckDB's marts carry integer item keys beside the SKUs: the split moves integers and the SKUs
    # are looked up once per event at the end (one take), instead of copying 64-character strings
    # through a temp table and Arrow. A mart without the key columns takes the string path.
    columns = mart_columns(con)
    keys = item_key_lookup(con, tenant, columns)
    item_list = "item_keys" if keys is not None else "items"
    # likewise actions: DuckDB's marts carry their ranks (integers), named here by one take
    ranked = "action_ranks" in columns
    action_list = "action_ranks" if ranked else "actions"
    # bounds first (no lists read), then ONE ordered copy of the window's sessions with their labels
    n_sessions, t_end = con.execute(
        f"select count(*), max(session_end_ms) from main.session_sequences where {window}", params
    ).fetchall()[0]
    test_cut, valid_cut = split_cuts(n_sessions, t_end, tenant, s)
    con.execute(
        f"""create or replace temp table _recframe_labels as
        select session_id, session_start_ms as s, session_end_ms as e, length,
               {item_list} as items, timestamps, {action_list} as actions,
               {split_label(test_cut, valid_cut)} as split
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
    known_counts: dict[str, dict[str, int]] = {}  # counts already known without hashing the frames
    session_ids: np.ndarray | None = None
    session_rank = np.empty(0, dtype=np.int64)
    for name in ("train", "valid", "test"):
        # Each event carries its session's row number in the labels table, not its id: the ids are
        # fetched once (one Python str per session) and expanded with a numpy take, instead of
        # copying a 64-character string per event through Arrow and hashing it back into shared
        # strings. Sessions are put in id order the same way: DuckDB sorts only (id, row number),
        # and the events, which arrive session by session, are permuted by whole sessions in
        # numpy; sorting the labels with their lists (one wide ORDER BY) cost several times more
        # at 10M events, and so did sorting valid/test events by their 64-character ids.
        base = f"""
            select rowid as session_row, unnest(items) as item_id, unnest(timestamps) as ts,
                   unnest(actions) as action, generate_subscripts(items, 1) as pos
            from _recframe_labels where split = '{name}'"""
        split_events, split_sessions = con.execute(
            f"select coalesce(sum(length), 0), count(*) from _recframe_labels where split = '{name}'"
        ).fetchall()[0]
        total_events += split_events
        if session_ids is None:
            session_ids, session_rank = session_order(con, "_recframe_labels")
        filtered = name != "train" and bool(unseen_sql)
        if not filtered:  # whole sessions, in unnest's order (session by session, list order)
            sql = f"select session_row, item_id, ts, action from ({base})"
        else:  # unseen items out, then sessions left too short
            sql = f"""select session_row, item_id, ts, action from ({base}) {unseen_sql}
                      qualify count(*) over (partition by session_row) >= {int(s["min_length"])}
                      order by session_row, pos"""
        coded = arrays_from_arrow(con.sql(sql), coded=True)
        rows = np.asarray(coded.pop("session_row"), dtype=np.int64)  # int64 even when empty
        order = by_session_rank(rows, session_rank)
        if order is not None:  # permute integers (codes), name them after: one object take each
            rows = rows[order]
            coded = {c: v.take(order) if isinstance(v, Coded) else v[order] for c, v in coded.items()}
        cols = {c: values.values() if isinstance(values, Coded) else values for c, values in coded.items()}
        if not filtered:
            known_counts[name] = {"sessions": int(split_sessions)}
        elif keys is not None:
            known_counts[name] = {"items": len(pd.unique(cols["item_id"]))}  # integers: cheap to hash
        if keys is not None:
            cols["item_id"] = keys.skus(cols["item_id"])
        if ranked:
            cols["action"] = action_names(cols["action"])
        frame = make_frame({"session_id": session_ids[rows], **cols})
        # the guard below, on integers: session ranks non-decreasing, time within a session
        in_order = is_sorted_by(session_rank[rows], frame["ts"].to_numpy())
        if not in_order:  # a guard: should DuckDB ever reorder, sort here instead
            frame = frame.sort_values(["session_id", "ts"], kind="stable").reset_index(drop=True)
        frames[name] = frame
        if name != "train" and unseen_sql:
            kept_events = len(frames[name])
            n_after = count_sessions(frames[name])
            removed_items = con.execute(
                f"select count(*) from ({base}) where item_id not in (select item_id from _recframe_known)"
            ).fetchall()[0][0]
            stats[f"{name}_unseen"] = {
                "unseen_dropped": int(removed_items),
                "short_sessions_dropped": int(split_sessions - n_after),
                "events_dropped": int(split_events - kept_events),
            }
    stats["query"]["events"] = int(total_events)
    for table in ("_recframe_labels", "_recframe_known"):
        con.execute(f"drop table if exists {table}")
    stats["targets"] = {"mode": s["targets"]}
    for name, frame in frames.items():
        if frame["ts"].dtype != np.int64:  # astype copies even when the dtype already matches
            frame["ts"] = frame["ts"].astype("int64")
        # train's distinct items are exactly the known-items table (no re-hashing of the ids)
        known = known_counts.get(name, {})
        n_items = n_known if name == "train" else known.get("items")
        stats[name] = describe_sorted(frame, n_items, known.get("sessions"))
        if name != "train":
            frames[name], stats["targets"][name] = mark_targets(frame, s["targets"])
    return frames["train"], frames["valid"], frames["test"], stats


class ItemKeys:
    """The SKU of each integer item key of one tenant (the ``items`` mart's ``item_key`` column)."""

    def __init__(self, keys: np.ndarray, skus: np.ndarray) -> None:
        size = int(keys.max()) + 1 if len(keys) else 1
        self.table = np.full(size, None, dtype=object)
        self.table[keys] = skus
        self.known = np.zeros(size, dtype=bool)
        self.known[keys] = True

    def skus(self, keys: np.ndarray) -> np.ndarray:
        """SKUs for ``keys`` (one shared ``str`` per item); a key the mart does not know is an error."""
        keys = np.asarray(keys, dtype=np.int64)
        if len(keys) and (keys.min() < 0 or keys.max() >= len(self.known) or not self.known[keys].all()):
            raise DataError(
                "session_sequences holds item keys that the items mart does not: the marts are from "
                "different builds (run the pipeline again to rebuild them)"
            )
        return self.table[keys]


def window_clause(tenant: str, split: dict[str, Any], timestamp: str) -> tuple[str, list[Any]]:
    """The sessions a split reads: the tenant's, with at least ``min_length`` events, starting in
    ``[start_date, end_date)``. ``timestamp`` is the warehouse's cast of a bound date parameter."""
    where = ["tenant = ?", "length >= ?"]
    params: list[Any] = [tenant, split["min_length"]]
    for key, op in (("start_date", ">="), ("end_date", "<")):
        if split[key]:
            where.append(f"session_start {op} {timestamp}")
            params.append(split[key])
    return " and ".join(where), params


def split_cuts(n_sessions: int, t_end: int | None, tenant: str, split: dict[str, Any]) -> tuple[int, int]:
    """The test and validation cut-offs (ms), counted back from the window's last event."""
    if not n_sessions:
        raise DataError(f"no sessions for tenant {tenant!r} with >= {split['min_length']} events in the date window")
    test_cut = int(t_end) - int(split["test_days"] * DAY_MS)
    return test_cut, test_cut - int(split["valid_days"] * DAY_MS)


def split_label(test_cut: int, valid_cut: int) -> str:
    """The SQL labelling a session test, valid or train by its start and end; null for a straddler."""
    return f"""case when session_start_ms >= {test_cut} then 'test'
                    when session_start_ms >= {valid_cut} and session_end_ms < {test_cut} then 'valid'
                    when session_end_ms < {valid_cut} then 'train' end"""


def mart_columns(con: Any) -> set[str]:
    """The columns of ``session_sequences`` (DuckDB's build adds ``item_keys`` and ``action_ranks``)."""
    return {d[0] for d in con.execute("select * from main.session_sequences limit 0").description}


#: each action rank's name, as the dbt project's ``action_rank`` / ``action_of_rank`` macros number them
ACTION_OF_RANK = np.array(["pageview", "detail", "add", "remove", "purchase", "fav"], dtype=object)


def action_names(ranks: np.ndarray) -> np.ndarray:
    """Action names for ``action_ranks`` values (one shared ``str`` per action)."""
    ranks = np.asarray(ranks, dtype=np.intp)
    if len(ranks) and (ranks.min() < 0 or ranks.max() >= len(ACTION_OF_RANK)):
        raise DataError(
            f"session_sequences holds an action rank outside 0..{len(ACTION_OF_RANK) - 1}: the dbt "
            "project's action_rank macro and recframe's ACTION_OF_RANK disagree"
        )
    return ACTION_OF_RANK[ranks]


def item_key_lookup(con: Any, tenant: str, columns: set[str]) -> ItemKeys | None:
    """The tenant's key -> SKU table when the marts carry item keys (``columns``, as read by
    :func:`mart_columns`: DuckDB's build), else None."""
    if "item_keys" not in columns:
        return None
    found = con.execute(
        "select item_key, sku from main.items where tenant = ? and item_key is not null", [tenant]
    ).fetchnumpy()
    return ItemKeys(np.asarray(found["item_key"], dtype=np.int64), np.asarray(found["sku"], dtype=object))


class Coded:
    """A string column as integer codes into ``categories`` (one Python ``str`` per distinct value
    per batch, ``None`` for nulls): permuting or concatenating codes moves integers, not object
    pointers whose reference counts must all be touched."""

    def __init__(self, codes: np.ndarray, categories: np.ndarray) -> None:
        self.codes = codes
        self.categories = categories

    def take(self, order: np.ndarray) -> Coded:
        return Coded(self.codes[order], self.categories)

    def values(self) -> np.ndarray:
        return self.categories[self.codes]


def arrays_from_arrow(source: Any, batch_rows: int = 1_000_000, coded: bool = False) -> dict[str, np.ndarray | Coded]:
    """The columns of an Arrow result as numpy arrays, with one Python ``str`` per distinct value per batch.

    ``.df()`` would create a new string object per row: 7.7M rows of 64-character ids cost ~1.8 GB.
    Dictionary-encoding each Arrow batch makes the rows share one object per distinct value; the
    codes of all batches index one concatenation of the batches' categories, and the object array
    is built once at the end (``coded=True`` returns :class:`Coded` columns to permute first).
    Reading batch by batch keeps only one batch of Arrow strings in memory at a time.
    """
    import pyarrow as pa

    if hasattr(source, "to_arrow_reader"):  # a DuckDB relation: stream it
        batches = source.to_arrow_reader(batch_rows)
    else:
        batches = source.to_batches() if hasattr(source, "to_batches") else source
    parts: dict[str, list[np.ndarray]] = {}
    categories: dict[str, list[np.ndarray]] = {}
    offsets: dict[str, int] = {}
    names: list[str] | None = None
    for batch in batches:
        names = batch.schema.names
        for i, name in enumerate(names):
            col = batch.column(i)
            if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                enc = col.dictionary_encode()
                # one trailing None category stands for nulls
                cats = np.asarray([*enc.dictionary.to_pylist(), None], dtype=object)
                codes = enc.indices.fill_null(len(cats) - 1).to_numpy(zero_copy_only=False).astype(np.int64)
                base = offsets.get(name, 0)
                values = codes + base if base else codes
                categories.setdefault(name, []).append(cats)
                offsets[name] = base + len(cats)
            else:
                values = col.to_numpy(zero_copy_only=False)
            parts.setdefault(name, []).append(values)
    if names is None:
        schema = getattr(batches, "schema", None)
        cols = schema.names if schema is not None else []
        return {c: np.asarray([], dtype=object) for c in cols}
    out: dict[str, np.ndarray | Coded] = {}
    for name in names:
        values = np.concatenate(parts.pop(name))
        if name in categories:
            column = Coded(values, np.concatenate(categories.pop(name)))
            out[name] = column if coded else column.values()
        else:
            out[name] = values
    return out


def make_frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """A frame over the arrays themselves, one block per column: ``pd.DataFrame(dict)`` would stack
    the object columns into one 2-D block and column assignment copies, each a pass over every
    pointer (~0.2-0.4 s per million rows)."""
    if not columns:
        return pd.DataFrame()
    series = [pd.Series(values, name=name, copy=False) for name, values in columns.items()]
    return pd.concat(series, axis=1, copy=False)


def session_order(con: Any, table: str) -> tuple[np.ndarray, np.ndarray]:
    """Session ids of ``table`` indexed by rowid, and each row's rank in session-id order.

    Only the narrow (id, rowid) pairs are sorted; the rows' lists never move.
    """
    ids = con.execute(f"select session_id from {table} order by rowid").fetchnumpy()["session_id"]
    ids = np.asarray(ids, dtype=object)
    by_id = con.execute(f"select rowid from {table} order by session_id").fetchnumpy()["rowid"]
    rank = np.empty(len(ids), dtype=np.int64)
    rank[np.asarray(by_id, dtype=np.int64)] = np.arange(len(ids), dtype=np.int64)
    return ids, rank


def by_session_rank(rows: np.ndarray, rank: np.ndarray) -> np.ndarray | None:
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


def is_sorted_by(sessions: np.ndarray, ts: np.ndarray) -> bool:
    """``sessions`` non-decreasing (ids, or integer positions in id order), ``ts`` within each session."""
    if len(ts) < 2:
        return True
    same = sessions[1:] == sessions[:-1]
    return bool((sessions[1:] >= sessions[:-1]).all() and (~same | (ts[1:] >= ts[:-1])).all())


def count_sessions(frame: pd.DataFrame) -> int:
    """Sessions in a frame sorted by session id (boundaries, no hashing)."""
    if frame.empty:
        return 0
    sid = frame["session_id"].to_numpy()
    return int((sid[1:] != sid[:-1]).sum()) + 1


def describe_sorted(frame: pd.DataFrame, n_items: int | None = None, n_sessions: int | None = None) -> dict[str, Any]:
    """Counts and time range of a sorted frame (``n_items``, ``n_sessions``: the counts, when already known)."""
    sessions = count_sessions(frame) if n_sessions is None else int(n_sessions)
    out: dict[str, Any] = {"sessions": sessions, "events": len(frame), "items": 0}
    if len(frame):
        out["items"] = int(n_items) if n_items is not None else int(len(pd.unique(frame["item_id"].to_numpy())))
        out["start"] = pd.Timestamp(int(frame["ts"].min()), unit="ms").isoformat()
        out["end"] = pd.Timestamp(int(frame["ts"].max()), unit="ms").isoformat()
    return out
