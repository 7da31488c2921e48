"""Time-based train/valid/test split of long-format session events, with leakage guards.

Shared by every warehouse-backed source: the warehouse builds sessions, Python only cuts them in
time. The rules, in order:

1. ``t_end`` is the last event time. Sessions *starting* at or after ``t_end - test_days`` are test.
2. Validation is carved from the end of what remains: sessions starting in the ``valid_days`` before
   the test cut. It is never the test set.
3. A session that starts before a cut but ends after it would leak future behaviour into the earlier
   split: it is dropped and counted (``straddling_dropped``). Hence no test session starts before the
   end of train, which :func:`check_no_leakage` asserts.
4. Items never seen in train cannot be predicted: they are removed from valid/test sessions and
   counted (``unseen_dropped``); sessions left shorter than ``min_length`` are then dropped too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recframe.events import categorical_ids, session_codes
from recframe.interfaces import DataError

DAY_MS = 86_400_000
#: Which positions of a valid/test session are prediction targets: the next item at every position
#: (``all``, the session-rec protocol) or only the last item (``last``, the "next click" protocol).
TARGET_MODES = ("all", "last")


def mark_targets(frame: pd.DataFrame, mode: str) -> tuple[pd.DataFrame, int]:
    """Add a boolean ``target`` column (events a model must predict from the prefix before them).

    The frame must be sorted by session then time. ``all``: every event but a session's first;
    ``last``: only a session's last event. Returns the frame and its number of targets.
    """
    if frame.empty:
        return frame.assign(target=pd.Series(dtype=bool)), 0
    sid = session_codes(frame["session_id"])
    first = np.r_[True, sid[1:] != sid[:-1]]
    last = np.r_[sid[1:] != sid[:-1], True]
    target = ~first if mode == "all" else last & ~first
    return frame.assign(target=target), int(target.sum())


def _session_bounds(events: pd.DataFrame) -> pd.DataFrame:
    g = events.groupby("session_id", sort=False)["ts"]
    return pd.DataFrame({"start": g.min(), "end": g.max()})


def _describe(frame: pd.DataFrame, ordinal: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "sessions": int(frame["session_id"].nunique()) if len(frame) else 0,
        "events": len(frame),
        "items": int(frame["item_id"].nunique()) if len(frame) else 0,
    }
    if len(frame) and not ordinal:
        out["start"] = pd.Timestamp(int(frame["ts"].min()), unit="ms").isoformat()
        out["end"] = pd.Timestamp(int(frame["ts"].max()), unit="ms").isoformat()
    return out


def _finish(frame: pd.DataFrame) -> pd.DataFrame:
    """Canonical dtypes and order: ``session_id``/``item_id`` (and ``action``) categoricals of
    strings (:func:`recframe.events.categorical_ids`), ``ts`` int64, sorted."""
    out = frame.copy()
    out["session_id"] = out["session_id"].astype(str)
    out["item_id"] = out["item_id"].astype(str)
    out["ts"] = out["ts"].astype(np.int64)
    # a stable sort keeps the warehouse's within-session order for equal timestamps
    return categorical_ids(out.sort_values(["session_id", "ts"], kind="stable").reset_index(drop=True))


def drop_unseen(
    frame: pd.DataFrame, known_items: set[str] | pd.Index, min_length: int
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Remove events whose item is not in train, then sessions shorter than ``min_length``."""
    if frame.empty:
        return frame, {"unseen_dropped": 0, "short_sessions_dropped": 0}
    keep = frame["item_id"].isin(known_items)
    kept = frame[keep]
    lengths = kept.groupby("session_id", sort=False)["item_id"].transform("size")
    before = frame["session_id"].nunique()
    out = kept[lengths >= min_length]
    return out, {
        "unseen_dropped": int((~keep).sum()),
        "short_sessions_dropped": int(before - out["session_id"].nunique()),
    }


def time_split(
    events: pd.DataFrame,
    test_days: float,
    valid_days: float,
    min_length: int = 2,
    drop_unseen_items: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Split long-format events by session start time; see the module docstring for the rules."""
    if events.empty:
        raise DataError("no sessions to split: the query returned nothing (check the date window and min_length)")
    bounds = _session_bounds(events)
    t_end = int(bounds["end"].max())
    test_cut = t_end - int(test_days * DAY_MS)
    valid_cut = test_cut - int(valid_days * DAY_MS)

    is_test = bounds["start"] >= test_cut
    is_valid = (bounds["start"] >= valid_cut) & ~is_test & (bounds["end"] < test_cut)
    is_train = bounds["end"] < valid_cut
    straddling = int((~(is_test | is_valid | is_train)).sum())

    sid = events["session_id"]
    train = events[sid.isin(bounds.index[is_train])]
    valid = events[sid.isin(bounds.index[is_valid])]
    test = events[sid.isin(bounds.index[is_test])]
    if train.empty:
        raise DataError(f"train split is empty: test_days={test_days} + valid_days={valid_days} cover all the data")
    if test.empty:
        raise DataError(f"test split is empty: no session starts in the last test_days={test_days}")

    stats: dict[str, Any] = {"straddling_dropped": straddling, "test_cut_ms": test_cut, "valid_cut_ms": valid_cut}
    if drop_unseen_items:
        known = pd.Index(train["item_id"].unique())
        valid, s_valid = drop_unseen(valid, known, min_length)
        test, s_test = drop_unseen(test, known, min_length)
        stats["valid_unseen"] = s_valid
        stats["test_unseen"] = s_test
        if test.empty:
            raise DataError("test split is empty once items unseen in train are dropped")
    train, valid, test = _finish(train), _finish(valid), _finish(test)
    check_no_leakage(train, valid, test)
    for name, frame in (("train", train), ("valid", valid), ("test", test)):
        stats[name] = _describe(frame)
    return train, valid, test, stats


def check_no_leakage(train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame) -> None:
    """Assert disjoint sessions and that no test (valid) session starts before train (valid) ends."""
    ids = [set(f["session_id"].unique()) for f in (train, valid, test)]
    if ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2]:
        raise DataError("split leakage: a session appears in more than one split")
    if len(test):
        test_start = int(test.groupby("session_id")["ts"].min().min())
        for name, frame in (("train", train), ("valid", valid)):
            if len(frame) and int(frame["ts"].max()) >= test_start:
                raise DataError(f"split leakage: a test session starts before the end of {name}")
    if len(valid) and len(train):
        valid_start = int(valid.groupby("session_id")["ts"].min().min())
        if int(train["ts"].max()) >= valid_start:
            raise DataError("split leakage: a validation session starts before the end of train")
