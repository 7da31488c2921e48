"""The session data sets of ``../shared/data`` as ``(train, test)`` event frames, whatever their layout.

* ``train.tsv.gz`` + ``test.tsv.gz`` (Diginetica, and any session-rec style folder);
* ``train_full.tsv.gz`` + ``test.tsv.gz`` (the YooChoose 100k sample; ``Time`` in Unix seconds);
* ``events.csv.gz`` with ``user_session, event_time, product_id`` (REES46): sessions are the
  ``user_session`` ids, ``ts`` epoch milliseconds, and the newest sessions by start time (a tenth,
  :data:`REES46_TEST_SHARE`) are the test split, the rest train.

Each returns frames in recframe's event layout (``session_id``, ``item_id`` as strings, ``ts`` int64),
sorted by session then time.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from _common import load_split, load_tsv_events

from recframe.interfaces import DataError

REES46_TEST_SHARE = 0.1


def load_dataset(directory: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, test)`` from a data folder in any of the layouts the module docstring lists."""
    d = Path(directory)
    if (d / "train.tsv.gz").exists():
        return load_split(d)
    if (d / "train_full.tsv.gz").exists():
        return load_tsv_events(d / "train_full.tsv.gz"), load_tsv_events(d / "test.tsv.gz")
    if (d / "events.csv.gz").exists():
        return split_newest(rees46_events(d / "events.csv.gz"), REES46_TEST_SHARE)
    raise DataError(f"{d}: expected train.tsv.gz + test.tsv.gz, train_full.tsv.gz + test.tsv.gz or events.csv.gz")


def rees46_events(path: Path) -> pd.DataFrame:
    """REES46 raw events as sessions: ``user_session`` -> session, ``product_id`` -> item, time in ms."""
    raw = pd.read_csv(path, usecols=["user_session", "event_time", "product_id"], dtype={"product_id": str})
    raw = raw.dropna(subset=["user_session", "product_id"])
    ts = pd.to_datetime(raw["event_time"], utc=True, format="%Y-%m-%d %H:%M:%S %Z")
    events = pd.DataFrame(
        {
            "session_id": raw["user_session"].astype(str),
            "item_id": raw["product_id"].astype(str),
            "ts": (ts.astype("int64") // 1_000_000).astype("int64"),
        }
    )
    return events.sort_values(["session_id", "ts"], kind="stable").reset_index(drop=True)


def split_newest(events: pd.DataFrame, share: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The newest ``share`` of sessions by start time as test, the rest as train."""
    starts = events.groupby("session_id")["ts"].min().reset_index().sort_values(["ts", "session_id"])
    n_test = max(1, int(round(len(starts) * share)))
    test_ids = set(starts["session_id"].iloc[len(starts) - n_test :])
    in_test = events["session_id"].isin(test_ids)
    return events[~in_test].reset_index(drop=True), events[in_test].reset_index(drop=True)
