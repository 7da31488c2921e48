"""Time split rules and leakage guards."""

from __future__ import annotations

import pandas as pd
import pytest

from recframe.datasource.split import DAY_MS, check_no_leakage, time_split
from recframe.interfaces import DataError


def _events(sessions):
    rows = [
        (sid, item, ts)
        for sid, items, start in sessions
        for item, ts in zip(items, range(start, start + 10**6, 60_000), strict=False)
    ]
    return pd.DataFrame(rows, columns=["session_id", "item_id", "ts"])


def test_time_split_puts_last_days_in_test_and_valid_before_it():
    day = DAY_MS
    sessions = [(f"s{d}", ["a", "b", "c"], d * day) for d in range(20)]
    sessions.append(("straddle", ["a", "b"], 16 * day + 100_000))  # starts before the test cut, ends after
    sessions.append(("unseen", ["a", "zzz", "b"], 19 * day + 5))
    train, valid, test, stats = time_split(_events(sessions), test_days=3, valid_days=2, min_length=2)
    t_end = 19 * day + 5 + 2 * 60_000
    assert set(test["session_id"]) == {"s17", "s18", "s19", "unseen"}  # start >= t_end - 3 days
    assert set(valid["session_id"]) == {"s15", "s16"}
    assert "straddle" not in set(train["session_id"]) | set(valid["session_id"]) | set(test["session_id"])
    assert stats["straddling_dropped"] >= 1
    assert "zzz" not in set(test["item_id"]) and stats["test_unseen"]["unseen_dropped"] == 1
    assert test.groupby("session_id")["ts"].min().min() > train["ts"].max()
    assert set(valid["session_id"]).isdisjoint(test["session_id"])
    assert t_end - 3 * day <= test["ts"].min()
    assert list(train.columns[:3]) == ["session_id", "item_id", "ts"] and train["ts"].dtype == "int64"


def test_empty_test_or_train_is_a_data_error():
    with pytest.raises(DataError, match="train split is empty"):
        time_split(_events([("a", ["x", "y"], 0)]), test_days=5, valid_days=1)


def test_check_no_leakage_catches_overlap():
    train = _events([("a", ["x", "y"], 1000)])
    test = _events([("b", ["x", "y"], 0)])
    with pytest.raises(DataError, match="leakage"):
        check_no_leakage(train, train.iloc[0:0], test)


def test_mark_targets_all_or_last():
    from recframe.datasource.split import mark_targets

    frame = _events([("a", ["x", "y", "z"], 0), ("b", ["x", "y"], 10**7)])
    every, n_all = mark_targets(frame, "all")
    last, n_last = mark_targets(frame, "last")
    assert every["target"].tolist() == [False, True, True, False, True] and n_all == 3
    assert last["target"].tolist() == [False, False, True, False, True] and n_last == 2
