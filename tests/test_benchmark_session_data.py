"""benchmarks/session_data.py: each shared-data layout loads as event frames, REES46 split by time."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def datasets():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import session_data as module
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def write_gz(path: Path, text: str) -> None:
    with gzip.open(path, "wt") as f:
        f.write(text)


def test_rees46_events_become_sessions_and_the_newest_are_test(datasets, tmp_path: Path) -> None:
    rows = ["event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"]
    for s in range(10):
        for t in range(3):
            rows.append(f"2019-10-01 00:{s:02d}:{t:02d} UTC,view,{100 + t + s},1,,b,1.0,7,sess{s}")
    rows.append("2019-10-01 00:30:00 UTC,view,5,1,,b,1.0,7,")  # no session: dropped
    write_gz(tmp_path / "events.csv.gz", "\n".join(rows) + "\n")
    train, test = datasets.load_dataset(tmp_path)
    assert list(train.columns) == ["session_id", "item_id", "ts"] and str(train["ts"].dtype) == "int64"
    assert set(test["session_id"]) == {"sess9"} and train["session_id"].nunique() == 9
    assert train["ts"].max() < test["ts"].min()
    assert test["ts"].iloc[1] - test["ts"].iloc[0] == 1000, "epoch milliseconds"


def test_yoochoose_layout_and_an_unknown_folder(datasets, tmp_path: Path) -> None:
    for name in ("train_full", "test"):
        write_gz(tmp_path / f"{name}.tsv.gz", "SessionId\tItemId\tTime\n1\t10\t1396437466.9\n1\t11\t1396437470.1\n")
    train, test = datasets.load_dataset(tmp_path)
    assert len(train) == 2 and train["ts"].tolist() == [1396437466, 1396437470]
    from recframe.interfaces import DataError

    with pytest.raises(DataError, match="expected train.tsv.gz"):
        datasets.load_dataset(tmp_path / "empty")
