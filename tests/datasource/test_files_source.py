"""FilesSource: already-sessionised TSV/CSV/parquet files, gzipped or not."""

from __future__ import annotations

import gzip
import os
import sys
from pathlib import Path

import pandas as pd
import pytest

from recframe.datasource.files import FilesSource
from recframe.interfaces import ConfigError, DataError

DIGINETICA = Path(os.environ.get("RECFRAME_DATA", "/work/shared/data")) / "diginetica"


def _write_tsv_gz(path: Path, rows) -> Path:
    with gzip.open(path, "wt") as fh:
        fh.write("SessionId\tItemId\tTime\n")
        for r in rows:
            fh.write("\t".join(map(str, r)) + "\n")
    return path


T0 = 1_600_000_000


def _train_test_source(tmp_path: Path, extra_train: tuple = ()) -> FilesSource:
    """20 three-event train sessions (plus ``extra_train`` rows) and 5 test sessions, one with an
    item train never saw, as gzipped TSV; a fifth of train carved out for validation."""
    train = [(s, i, T0 + s * 600 + k) for s in range(20) for k, i in enumerate((s % 4, (s + 1) % 4, (s + 2) % 4))]
    test = [(100 + s, i, T0 + 10**5 + s * 600 + k) for s in range(5) for k, i in enumerate((1, 2, 77))]
    return FilesSource(
        train=_write_tsv_gz(tmp_path / "train.tsv.gz", [*train, *extra_train]),
        test=_write_tsv_gz(tmp_path / "test.tsv.gz", test),
        valid_fraction=0.2,
    )


def test_reads_gzipped_tsv_and_carves_validation(tmp_path):
    src = _train_test_source(tmp_path, extra_train=((99, 1, T0),))  # a single-event session: dropped
    ds = src.load(tmp_path / "data")
    assert ds.stats["time_unit"] == "s"
    assert ds.train["ts"].dtype == "int64" and ds.train["ts"].min() == T0 * 1000
    assert ds.train["session_id"].nunique() == 16 and ds.valid["session_id"].nunique() == 4
    assert ds.valid.groupby("session_id")["ts"].min().min() > ds.train["ts"].max()
    assert "77" not in set(ds.test["item_id"]) and ds.stats["test_unseen"]["unseen_dropped"] == 5
    assert ds.stats["train_short_dropped"] == 1
    assert list(ds.test["session_id"].unique()) == sorted(ds.test["session_id"].unique())


def test_given_valid_file_and_csv(tmp_path):
    rows = [(s, i, s * 10 + k) for s in range(6) for k, i in enumerate((1, 2, 3))]
    for name in ("train", "valid", "test"):
        (tmp_path / f"{name}.csv").write_text("sid,iid,t\n" + "".join(f"{name}{s},{i},{t}\n" for s, i, t in rows))
    src = FilesSource(
        train=tmp_path / "train.csv",
        test=tmp_path / "test.csv",
        valid=tmp_path / "valid.csv",
        columns={"session": "sid", "item": "iid", "time": "t"},
        time_unit="ordinal",
    )
    ds = src.load(tmp_path)
    assert len(ds.train) == len(ds.valid) == len(ds.test) == 18


def test_bad_config_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="datasource.valid_fraction"):
        FilesSource(train="a", test="b", valid_fraction=0.9)
    with pytest.raises(ConfigError, match="datasource.time_unit"):
        FilesSource(train="a", test="b", time_unit="hours")
    with pytest.raises(DataError, match="not found"):
        FilesSource(train=tmp_path / "nope.tsv", test=tmp_path / "nope.tsv").load(tmp_path)


@pytest.mark.skipif(not DIGINETICA.exists(), reason="real Diginetica sample not available")
def test_real_diginetica_sample(tmp_path):
    ds = FilesSource(train=DIGINETICA / "train.tsv.gz", test=DIGINETICA / "test.tsv.gz", valid_fraction=0.0).load(
        tmp_path
    )
    assert ds.train["session_id"].nunique() == 186_670
    assert len(ds.test) == 76_821 and ds.valid.empty


@pytest.fixture
def without_duckdb(monkeypatch):
    """A bare training image: ``import duckdb`` fails, so FilesSource reads with PyArrow."""
    monkeypatch.setitem(sys.modules, "duckdb", None)


def _formats(tmp_path: Path) -> dict[str, Path]:
    """The same rows (an empty item, a non-numeric time aside) as TSV.gz, CSV and parquet."""
    rows = [(s, 10 + (s + k) % 3, 1_600_000_000 + s * 60 + k) for s in range(8) for k in range(3)]
    out = {"tsv.gz": _write_tsv_gz(tmp_path / "f.tsv.gz", rows)}
    (tmp_path / "f.csv").write_text("SessionId,ItemId,Time\n" + "".join(f"{s},{i},{t}\n" for s, i, t in rows))
    out["csv"] = tmp_path / "f.csv"
    pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"]).to_parquet(tmp_path / "f.parquet")
    out["parquet"] = tmp_path / "f.parquet"
    return out


@pytest.mark.parametrize("fmt", ["tsv.gz", "csv", "parquet"])
def test_arrow_reader_matches_duckdb(tmp_path, fmt):
    import duckdb

    path = _formats(tmp_path)[fmt]
    src = FilesSource(train=path, test=path)
    con = duckdb.connect()
    try:
        by_duckdb = src._read(con, path)
    finally:
        con.close()
    by_arrow = src._read(None, path)
    assert list(by_arrow.columns) == ["session_id", "item_id", "t"] and len(by_arrow) == 24
    pd.testing.assert_frame_equal(by_arrow, by_duckdb, check_dtype=False)
    assert by_arrow["session_id"].map(type).eq(str).all() and by_arrow["t"].dtype == "float64"


def test_load_without_duckdb_gives_the_same_dataset(tmp_path, monkeypatch):
    src = _train_test_source(tmp_path)
    with_duckdb = src.load(tmp_path / "a")
    monkeypatch.setitem(sys.modules, "duckdb", None)
    with pytest.raises(ImportError):
        import duckdb  # noqa: F401
    without = src.load(tmp_path / "b")
    for name in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(getattr(without, name), getattr(with_duckdb, name), check_dtype=False)
    assert without.stats == with_duckdb.stats


def test_arrow_reader_errors_name_the_file(tmp_path, without_duckdb):
    bad_time = tmp_path / "bad.tsv"
    bad_time.write_text("SessionId\tItemId\tTime\n1\t2\t3\n1\t3\tsoon\n")
    with pytest.raises(DataError, match="1 rows have an empty or non-numeric"):
        FilesSource(train=bad_time, test=bad_time).load(tmp_path)
    empty_item = tmp_path / "empty.tsv"
    empty_item.write_text("SessionId\tItemId\tTime\n1\t2\t3\n1\t\t4\n")
    with pytest.raises(DataError, match="1 rows have an empty"):
        FilesSource(train=empty_item, test=empty_item).load(tmp_path)
    with pytest.raises(DataError, match=r"cannot read .*bad.tsv"):
        FilesSource(train=bad_time, test=bad_time, columns={"item": "sku"}).load(tmp_path)


@pytest.mark.skipif(not DIGINETICA.exists(), reason="real Diginetica sample not available")
def test_real_diginetica_without_duckdb(tmp_path, without_duckdb):
    ds = FilesSource(train=DIGINETICA / "train.tsv.gz", test=DIGINETICA / "test.tsv.gz", valid_fraction=0.0).load(
        tmp_path
    )
    assert ds.train["session_id"].nunique() == 186_670 and len(ds.train) == 906_140
    assert len(ds.test) == 76_821 and ds.valid.empty and ds.stats["time_unit"] == "ordinal"
