"""The one query of the data step: sessions of the date window -> time split -> event frames.

DuckDB runs it on the warehouse itself (Snowflake runs the same rules in its own SQL,
:mod:`recframe.datasource.snowflake_split`). It reads only the
``session_sequences`` mart (and, where it carries item keys, the ``items`` mart's key -> SKU
table); the split rules are :mod:`recframe.datasource.split`'s. The helpers turn
Arrow results into pandas frames without one Python object per row (see :func:`arrays_from_arrow`).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from recframe.datasource.split import DAY_MS, mark_targets
from recframe.events import categorical_ids, session_codes
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
    long format straight from the mart. Items unseen in train are removed from valid/test in SQL
    too, so that pandas only receives the final frames. Nothing of the mart is copied into a
    table of the query's own: the memory the client needs grows with the fetched splits (their
    integer columns and one string per session), not with the mart.
    """
    s = split  # validated settings (short name: used in most lines below)
    window, params = window_clause(tenant, s, "cast(? as timestamp)")
    # DuckDB's marts carry integer item keys beside the SKUs: the split moves integers and the keys
    # become the codes of a categorical of SKUs at the end, instead of copying 64-character strings
    # through Arrow. A mart without the key columns takes the string path.
    columns = mart_columns(con)
    keys = item_key_lookup(con, tenant, columns)
    item_list = "item_keys" if keys is not None else "items"
    # likewise actions: DuckDB's marts carry their ranks (integers), the codes of a categorical here
    ranked = "action_ranks" in columns
    action_list = "action_ranks" if ranked else "actions"
    # bounds first (no lists read), then each split's sessions, labelled by their start and end
    n_sessions, t_end = con.execute(
        f"select count(*), max(session_end_ms) from main.session_sequences where {window}", params
    ).fetchall()[0]
    test_cut, valid_cut = split_cuts(n_sessions, t_end, tenant, s)
    label = split_label(test_cut, valid_cut)
    per_split = {
        name: (int(n), int(events), lo, hi)
        for name, n, events, lo, hi in con.execute(
            f"""select {label} as split, count(*), coalesce(sum(length), 0),
                       min(session_start_ms), max(session_end_ms)
                from main.session_sequences where {window} group by all""",
            params,
        ).fetchall()
    }
    # leakage guards, on the labels (cheap): disjoint by construction, and ordered in time
    bounds = {k: (v[2], v[3]) for k, v in per_split.items() if k is not None}
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

    def sessions_of(name: str, salt: int = 0) -> str:
        # a split's sessions; each event carries a 64-bit hash of its session's id (``salt``
        # varies it) instead of the 64-character id
        return f"""(select hash(session_id, {int(salt)}) as session_key, session_id, session_start_ms as s,
                           session_end_ms as e, length, {item_list} as items, timestamps,
                           {action_list} as actions
                    from main.session_sequences where {window} and ({label}) = '{name}')"""

    unseen_sql = ""
    n_known = None
    if s["drop_unseen"]:
        con.execute(
            f"create or replace temp table _recframe_known as select distinct unnest(items) as item_id "
            f"from {sessions_of('train')}",
            params,
        )
        unseen_sql = "where item_id in (select item_id from _recframe_known)"
        n_known = con.execute("select count(*) from _recframe_known").fetchall()[0][0]
    frames: dict[str, pd.DataFrame] = {}
    stats: dict[str, Any] = {
        "query": {"sessions": int(n_sessions), "events": None},
        "straddling_dropped": int(per_split.get(None, (0,))[0]),
        "test_cut_ms": test_cut,
        "valid_cut_ms": valid_cut,
    }
    total_events = 0
    known_counts: dict[str, dict[str, int]] = {}  # counts already known without hashing the frames
    for name in ("train", "valid", "test"):
        split_sessions, split_events = per_split.get(name, (0, 0))[:2]
        total_events += split_events
        # The split's session ids, sorted, with their hashes: events carry the hash, and the ids
        # are taken once in numpy by each event's position in id order (one Python str per
        # session). Sessions are put in id order by moving whole runs of events (see
        # by_session_rank): DuckDB sorts only the narrow (id, hash) pairs, never the lists.
        order, salt = sessions_by_id(con, partial(sessions_of, name), params)
        session_ids = np.asarray(order.pop("session_id"), dtype=object)
        base = f"""
            select session_key, unnest(items) as item_id, unnest(timestamps) as ts,
                   unnest(actions) as action, generate_subscripts(items, 1) as pos
            from {sessions_of(name, salt)}"""
        filtered = name != "train" and bool(unseen_sql)
        if not filtered:  # whole sessions, in unnest's order (session by session, list order)
            sql = f"select session_key, item_id, ts, action from ({base})"
        else:  # unseen items out, then sessions left too short
            sql = f"""select session_key, item_id, ts, action from ({base}) {unseen_sql}
                      qualify count(*) over (partition by session_key) >= {int(s["min_length"])}
                      order by session_key, pos"""
        coded = arrays_from_arrow(con.sql(sql, params=params), coded=True, rows=None if filtered else split_events)
        event_keys = np.asarray(coded.pop("session_key"), dtype=np.uint64)
        starts = run_starts(event_keys)  # the events arrive session by session
        rows = session_positions(event_keys, starts, order["key"])
        check_numbering(rows, starts, coded["ts"], order, whole=not filtered)
        permutation = by_session_rank(rows, starts)
        if permutation is not None:  # permute integers (codes), name them after: one object take each
            rows = rows[permutation]
            for c in list(coded):  # one column at a time: at most one extra column in memory
                v = coded.pop(c)
                coded[c] = v.take(permutation) if isinstance(v, Coded) else v[permutation]
                del v
        del order, permutation, event_keys, starts
        cols = {c: values.values() if isinstance(values, Coded) else values for c, values in coded.items()}
        del coded
        if not filtered:
            known_counts[name] = {"sessions": int(split_sessions)}
        elif keys is not None:
            known_counts[name] = {"items": len(pd.unique(cols["item_id"]))}  # integers: cheap to hash
        # the ids as categoricals: integer codes and one string per session (item, action), not
        # one Python object per event; session codes follow the frame's (id) order
        if keys is not None:
            cols["item_id"] = keys.categorical(cols["item_id"])
        if ranked:
            cols["action"] = action_categorical(cols["action"])
        sessions = used_categorical(rows, session_ids)
        frame = make_frame({"session_id": sessions, **cols})
        # the guard below, on integers: session ranks non-decreasing, time within a session
        in_order = is_sorted_by(rows, frame["ts"].to_numpy())
        del rows, cols
        if not in_order:  # a guard: should DuckDB ever reorder, sort here instead
            frame = frame.sort_values(["session_id", "ts"], kind="stable").reset_index(drop=True)
        frames[name] = frame
        if filtered:
            kept_events = len(frames[name])
            n_after = count_sessions(frames[name])
            removed_items = con.execute(
                f"select count(*) from ({base}) where item_id not in (select item_id from _recframe_known)", params
            ).fetchall()[0][0]
            stats[f"{name}_unseen"] = {
                "unseen_dropped": int(removed_items),
                "short_sessions_dropped": int(split_sessions - n_after),
                "events_dropped": int(split_events - kept_events),
            }
    stats["query"]["events"] = int(total_events)
    con.execute("drop table if exists _recframe_known")
    stats["targets"] = {"mode": s["targets"]}
    for name, frame in frames.items():
        frame = frames[name] = categorical_ids(frame)  # the string path (marts without item keys)
        if frame["ts"].dtype != np.int64:  # astype copies even when the dtype already matches
            frame["ts"] = frame["ts"].astype("int64")
        # train's distinct items are exactly the known-items table (no re-hashing of the ids)
        known = known_counts.get(name, {})
        n_items = n_known if name == "train" else known.get("items")
        stats[name] = describe_sorted(frame, n_items, known.get("sessions"))
        if name != "train":
            frames[name], stats["targets"][name] = mark_targets(frame, s["targets"])
    return frames["train"], frames["valid"], frames["test"], stats


#: salts tried for the session hashes before giving up (each try's collision odds are ~n²/2^65)
HASH_SALTS = (0, 1, 2)


def sessions_by_id(con: Any, sessions: Any, params: list[Any]) -> tuple[dict[str, np.ndarray], int]:
    """A split's sessions in id order (``session_id``, ``key``: the hash events carry, ``s``:
    start ms, ``length``) and the salt whose hashes are all distinct. ``sessions(salt)`` is the
    split's relation."""
    for salt in HASH_SALTS:
        found = con.execute(
            f"select session_key as key, session_id, s, length from {sessions(salt)} order by session_id", params
        ).fetchnumpy()
        out = {c: np.asarray(v) for c, v in found.items()}
        out["key"] = out["key"].astype(np.uint64, copy=False)
        if len(np.unique(out["key"])) == len(out["key"]):
            return out, salt
    raise DataError(  # pragma: no cover - needs three 64-bit collisions in a row
        "session ids collide in all of recframe's 64-bit session hashes: report it with the DuckDB version"
    )


def run_starts(values: np.ndarray) -> np.ndarray:
    """The first index of each run of equal neighbouring ``values`` (empty for no values)."""
    if len(values) == 0:
        return np.empty(0, dtype=np.int64)
    return np.flatnonzero(np.r_[True, values[1:] != values[:-1]])


def session_positions(event_keys: np.ndarray, starts: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Each event's session position in id order, from the session hashes (``keys``, in id order).

    Events arrive session by session, so only the first key of each run (``starts``, see
    :func:`run_starts`) is looked up.
    """
    n = len(event_keys)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    by_key = np.argsort(keys, kind="stable")
    sorted_keys = keys[by_key]
    found = np.searchsorted(sorted_keys, event_keys[starts])
    found[found == len(keys)] = 0
    if not len(keys) or not bool((sorted_keys[found] == event_keys[starts]).all()):
        raise DataError(
            "session_sequences changed while it was read (an event's session is not among the split's "
            "sessions): run the data step again once the dbt build has finished"
        )
    return np.repeat(by_key[found], np.diff(np.r_[starts, n]))


def check_numbering(
    rows: np.ndarray, starts: np.ndarray, ts: np.ndarray, sessions: dict[str, np.ndarray], whole: bool
) -> None:
    """Guard that the events were matched with the sessions whose ids they are given.

    ``rows``: each event's session position in id order, ``starts``: where its runs start;
    ``sessions``: the id query's columns, in that order. Each session's first event must be at
    (for whole sessions) or after its start time and, for whole sessions, its event count must be
    its length. A failure means the mart changed between the two reads.
    """
    if len(rows) == 0:
        return
    where = rows[starts]
    first_ts = np.asarray(ts)[starts]
    session_start = np.asarray(sessions["s"], dtype=np.int64)[where]
    ok = bool((first_ts == session_start).all()) if whole else bool((first_ts >= session_start).all())
    if ok and whole:
        lengths = np.diff(np.r_[starts, len(rows)])
        ok = len(starts) == len(sessions["s"]) and bool((lengths == np.asarray(sessions["length"])[where]).all())
    if not ok:
        raise DataError(
            "session_sequences changed while it was read (a session's events do not match its length "
            "or start): run the data step again once the dbt build has finished"
        )


class ItemKeys:
    """The SKU of each integer item key of one tenant (the ``items`` mart's ``item_key`` column)."""

    def __init__(self, keys: np.ndarray, skus: np.ndarray) -> None:
        size = int(keys.max()) + 1 if len(keys) else 1
        self.table = np.full(size, None, dtype=object)
        self.table[keys] = skus
        self.known = np.zeros(size, dtype=bool)
        self.known[keys] = True
        self.positions: np.ndarray | None = None
        self.categories: np.ndarray | None = None

    def categorical(self, keys: np.ndarray) -> pd.Categorical:
        """``keys`` as a categorical of their SKUs (int32 codes, the SKUs used as its categories in
        SKU order); a key the mart does not know is an error."""
        keys = np.asarray(keys, dtype=np.int64)
        if len(keys) and (keys.min() < 0 or keys.max() >= len(self.known) or not self.known[keys].all()):
            raise DataError(
                "session_sequences holds item keys that the items mart does not: the marts are from "
                "different builds (run the pipeline again to rebuild them)"
            )
        if self.positions is None:
            known = np.flatnonzero(self.known)
            known = known[np.argsort(self.table[known].astype(str), kind="stable")]  # categories by SKU
            self.positions = np.full(len(self.known), -1, dtype=np.int32)
            self.positions[known] = np.arange(len(known), dtype=np.int32)
            self.categories = self.table[known]
        return used_categorical(self.positions[keys], self.categories)


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


#: the action names in name order, and each rank's position there
_ACTIONS_BY_NAME = np.argsort(ACTION_OF_RANK.astype(str))
_NAME_POSITION = np.argsort(_ACTIONS_BY_NAME).astype(np.int8)


def action_categorical(ranks: np.ndarray) -> pd.Categorical:
    """``action_ranks`` values as a categorical of the action names used, sorted by name; a rank
    the dbt project's ``action_rank`` macro does not give is an error."""
    ranks = np.asarray(ranks, dtype=np.intp)
    if len(ranks) and (ranks.min() < 0 or ranks.max() >= len(ACTION_OF_RANK)):
        raise DataError(
            f"session_sequences holds an action rank outside 0..{len(ACTION_OF_RANK) - 1}: the dbt "
            "project's action_rank macro and recframe's ACTION_OF_RANK disagree"
        )
    return used_categorical(_NAME_POSITION[ranks], ACTION_OF_RANK[_ACTIONS_BY_NAME])


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


def arrays_from_arrow(
    source: Any, batch_rows: int = 1_000_000, coded: bool = False, rows: int | None = None
) -> dict[str, np.ndarray | Coded]:
    """The columns of an Arrow result as numpy arrays, with one Python ``str`` per distinct value per batch.

    ``.df()`` would create a new string object per row: 7.7M rows of 64-character ids cost ~1.8 GB.
    Dictionary-encoding each Arrow batch makes the rows share one object per distinct value; the
    codes of all batches index one concatenation of the batches' categories, and the object array
    is built once at the end (``coded=True`` returns :class:`Coded` columns to permute first).
    Reading batch by batch keeps only one batch of Arrow strings in memory at a time. With
    ``rows`` (the result's row count, when known) the numeric columns are written into arrays of
    that length as the batches arrive, instead of concatenating the batches at the end (which
    needs twice the memory).
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
    direct: dict[str, np.ndarray] = {}  # numeric columns written in place (``rows`` given)
    filled = 0
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
                if rows is not None and filled + len(values) <= rows:
                    if name not in direct:
                        direct[name] = np.empty(rows, dtype=values.dtype)
                    direct[name][filled : filled + len(values)] = values
                    continue
            parts.setdefault(name, []).append(values)
        filled += batch.num_rows
    if names is None:
        schema = getattr(batches, "schema", None)
        cols = schema.names if schema is not None else []
        return {c: np.asarray([], dtype=object) for c in cols}
    out: dict[str, np.ndarray | Coded] = {}
    if direct and filled != rows:  # the count was wrong: the batches are not all in place
        raise DataError(
            f"the query returned {filled} rows where {rows} were counted: the mart changed while it was "
            "read; run the data step again once the dbt build has finished"
        )
    for name in names:
        if name in direct:
            out[name] = direct.pop(name)
            continue
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


def by_session_rank(ranks: np.ndarray, starts: np.ndarray) -> np.ndarray | None:
    """Permutation putting events (``ranks``: their session's position in id order; ``starts``:
    where its runs start) in session order.

    Events of a session arrive contiguously and in list order (unnest); whole runs are moved, so
    the order inside a session is kept. Returns None when the events are already in order.
    Should the runs ever not be contiguous, a stable argsort on the ranks gives the same order.
    """
    n = len(ranks)
    if n == 0:
        return None
    run_rank = ranks[starts]
    if bool((np.bincount(run_rank) > 1).any()):  # a session in several runs
        return np.argsort(ranks, kind="stable")
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
    sid = session_codes(frame["session_id"])
    return int((sid[1:] != sid[:-1]).sum()) + 1


def describe_sorted(frame: pd.DataFrame, n_items: int | None = None, n_sessions: int | None = None) -> dict[str, Any]:
    """Counts and time range of a sorted frame (``n_items``, ``n_sessions``: the counts, when already known)."""
    sessions = count_sessions(frame) if n_sessions is None else int(n_sessions)
    out: dict[str, Any] = {"sessions": sessions, "events": len(frame), "items": 0}
    if len(frame):
        out["items"] = int(n_items) if n_items is not None else count_distinct(frame["item_id"])
        out["start"] = pd.Timestamp(int(frame["ts"].min()), unit="ms").isoformat()
        out["end"] = pd.Timestamp(int(frame["ts"].max()), unit="ms").isoformat()
    return out


def used_categorical(codes: np.ndarray, categories: np.ndarray) -> pd.Categorical:
    """A categorical of ``categories[codes]`` keeping only the categories used, in their order
    (so that grouping by it never yields empty groups); built in one pass over the codes."""
    used = np.zeros(len(categories), dtype=bool)
    used[codes] = True
    if used.all():
        kept, new_codes = categories, codes.astype(np.int32, copy=False)
    else:
        kept = categories[used]
        new_codes = (np.cumsum(used, dtype=np.int64) - 1).astype(np.int32)[codes]
    dtype = pd.CategoricalDtype(pd.Index(kept, dtype=object))
    return pd.Categorical.from_codes(new_codes, dtype=dtype, validate=False)


def count_distinct(column: pd.Series) -> int:
    """Distinct values of a column; a categorical's are counted on its integer codes."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return int(len(pd.unique(column.cat.codes.to_numpy())))
    return int(len(pd.unique(column.to_numpy())))
