"""Already-sessionised files (the GRU4Rec / session-rec layout): no warehouse, no dbt.

Public benchmarks ship as ``SessionId, ItemId, Time`` files with a fixed train/test split; comparing
with published numbers requires using that split as-is, so this source reads the given files and only
carves validation (when no file is given) from the end of train: the latest ``valid_fraction`` of
train sessions by their last event time (or by order, for ordinal times). DuckDB reads the files
(TSV/CSV/parquet, gzipped or not) because it is several times faster than pandas on large CSVs; where
DuckDB is not installed (a bare training image), PyArrow's multi-threaded readers read them the same
way, so ``datasource=files`` needs nothing beyond what training needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recframe import validation as v
from recframe.datasource.split import TARGET_MODES, _describe, _finish, check_no_leakage, drop_unseen, mark_targets
from recframe.interfaces import ConfigError, DataError, Dataset, DataSource

TIME_UNITS = ("auto", "s", "ms", "ordinal")


def _read_sql(path: Path) -> str:
    p = str(path).replace("'", "''")
    name = path.name.lower()
    if name.endswith(".parquet") or name.endswith(".pq"):
        return f"read_parquet('{p}')"
    delim = "\\t" if (".tsv" in name or ".txt" in name) else ","
    return f"read_csv('{p}', delim = '{delim}', header = true, all_varchar = true)"


def read_with_arrow(path: Path, columns: Mapping[str, str]) -> pd.DataFrame:
    """One session file read by PyArrow as the DuckDB query reads it: ids as strings, time as float.

    Like DuckDB's ``all_varchar`` CSV reading and ``try_cast``, an empty field is missing and a time
    that is not a number becomes NaN, which :meth:`FilesSource._checked` reports.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    names = [columns["session"], columns["item"], columns["time"]]
    name = path.name.lower()
    try:
        if name.endswith(".parquet") or name.endswith(".pq"):
            table = pq.read_table(path, columns=names)
        else:
            delim = "\t" if (".tsv" in name or ".txt" in name) else ","
            table = pacsv.read_csv(
                path,
                parse_options=pacsv.ParseOptions(delimiter=delim),
                convert_options=pacsv.ConvertOptions(
                    include_columns=names,
                    column_types={n: pa.string() for n in names},
                    strings_can_be_null=True,
                ),
            )
    except (pa.ArrowException, KeyError, OSError) as e:  # a missing column, a malformed file
        raise DataError(f"cannot read {path}: {' '.join(str(e).split())[:300]}") from None
    return pd.DataFrame(
        {
            "session_id": _arrow_text(table.column(names[0])),
            "item_id": _arrow_text(table.column(names[1])),
            "t": _arrow_number(table.column(names[2])),
        }
    )


def _arrow_text(col: Any) -> pd.Series:
    """An id column as Python strings (missing: NaN), spelled as DuckDB's cast to varchar spells them.

    String columns go through a dictionary, so each distinct id becomes one string object shared by
    its rows (twice as fast as converting every row); other types are spelled by pandas.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return pd.Series(np.asarray(pc.dictionary_encode(col).to_pandas().astype(object)), dtype=object)
    values = col.to_pandas()
    return values.where(values.isna(), values.astype(str)).astype(object)


def _arrow_number(col: Any) -> pd.Series:
    """A time column as float64; a value that is not a number becomes NaN (DuckDB's ``try_cast``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        return pc.cast(col, pa.float64()).to_pandas()
    except pa.ArrowException:  # some value does not parse: pandas marks just those
        return pd.to_numeric(col.to_pandas(), errors="coerce").astype("float64")


class FilesSource(DataSource):
    """Given train/test (and optional valid) session files.

    Args:
        train, test: paths of the session files (``.tsv``, ``.csv``, ``.parquet``, optionally ``.gz``).
        valid: optional validation file; if null, the latest ``valid_fraction`` of train sessions.
        valid_fraction: share of train sessions carved into validation (0 disables validation).
        columns: ``session``, ``item``, ``time`` column names in the files.
        time_unit: ``s`` or ``ms`` (converted to epoch ms), ``ordinal`` (kept as is), ``auto``
            (seconds if the values look like Unix seconds, else as is).
        min_length: shorter sessions are dropped (in every split).
        drop_unseen: remove valid/test items never seen in train (counted).
        targets: ``all`` (next item at every position) or ``last`` (last item only), marked in a
            boolean ``target`` column of valid/test.
    """

    def __init__(
        self,
        train: str | Path,
        test: str | Path,
        valid: str | Path | None = None,
        valid_fraction: float = 0.1,
        columns: Mapping[str, str] | None = None,
        time_unit: str = "auto",
        min_length: int = 2,
        drop_unseen: bool = True,
        targets: str = "all",
    ) -> None:
        for key, value in (("train", train), ("test", test)):
            if not value or str(value) == "???":
                raise ConfigError(f"datasource.{key}", value, "must be a file path")
        self.train_path, self.test_path = Path(str(train)), Path(str(test))
        self.valid_path = Path(str(valid)) if valid else None
        self.valid_fraction = v.number("datasource.valid_fraction", valid_fraction, 0.0, 0.5)
        cols = {"session": "SessionId", "item": "ItemId", "time": "Time", **dict(columns or {})}
        unknown = sorted(set(cols) - {"session", "item", "time"})
        if unknown:
            raise ConfigError(f"datasource.columns.{unknown[0]}", cols[unknown[0]], "known keys: session, item, time")
        self.columns = cols
        self.time_unit = v.choice("datasource.time_unit", time_unit, TIME_UNITS)
        self.min_length = v.integer("datasource.min_length", min_length, 2)
        self.drop_unseen = v.boolean("datasource.drop_unseen", drop_unseen)
        self.targets = v.choice("datasource.targets", targets, TARGET_MODES)
        self._resolved_unit = time_unit

    def check(self) -> None:
        for p in (self.train_path, self.test_path, self.valid_path):
            if p is not None and not p.exists():
                raise DataError(f"session file not found: {p}")

    # ------------------------------------------------------------------------------------------------
    def _read(self, con: Any, path: Path) -> pd.DataFrame:
        """``session_id``, ``item_id`` (strings) and ``t`` (float) of one file; DuckDB or, without it, PyArrow."""
        if con is None:
            return self._checked(read_with_arrow(path, self.columns), path)
        c = self.columns
        try:
            df = con.execute(
                f'select cast("{c["session"]}" as varchar) as session_id, cast("{c["item"]}" as varchar) as item_id, '
                f'try_cast("{c["time"]}" as double) as t from {_read_sql(path)}'
            ).df()
        except Exception as e:  # duckdb raises BinderException etc. for a missing column
            raise DataError(f"cannot read {path}: {' '.join(str(e).split())[:300]}") from None
        return self._checked(df, path)

    @staticmethod
    def _checked(df: pd.DataFrame, path: Path) -> pd.DataFrame:
        bad = df["t"].isna() | df["session_id"].isna() | df["item_id"].isna()
        if bad.any():
            raise DataError(f"{path}: {int(bad.sum())} rows have an empty or non-numeric session, item or time")
        return df

    def _to_ts(self, t: pd.Series) -> pd.Series:
        unit = self.time_unit
        if unit == "auto":
            # Unix seconds for 2001..2100 are 1e9..4.1e9; anything else is kept as an ordinal/ms
            unit = "s" if len(t) and 9.0e8 < float(t.median()) < 4.2e9 else "ordinal"
        self._resolved_unit = unit
        if unit == "s":
            return (t * 1000).round().astype(np.int64)
        return t.round().astype(np.int64)

    def _min_len(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
        n = frame.groupby("session_id", sort=False)["item_id"].transform("size")
        out = frame[n >= self.min_length]
        return out, int(frame["session_id"].nunique() - out["session_id"].nunique())

    def load(self, work_dir: Path) -> Dataset:
        self.check()
        try:
            import duckdb
        except ImportError:  # PyArrow reads the files instead (see the module docstring)
            duckdb = None
        con = duckdb.connect() if duckdb is not None else None
        try:
            frames = {"train": self._read(con, self.train_path), "test": self._read(con, self.test_path)}
            if self.valid_path is not None:
                frames["valid"] = self._read(con, self.valid_path)
        finally:
            if con is not None:
                con.close()
        stats: dict[str, Any] = {
            "source": "files",
            "files": {
                k: str(p)
                for k, p in (("train", self.train_path), ("valid", self.valid_path), ("test", self.test_path))
                if p
            },
        }
        out: dict[str, pd.DataFrame] = {}
        for name, df in frames.items():
            df = df.assign(ts=self._to_ts(df["t"])).drop(columns="t")
            out[name], stats[f"{name}_short_dropped"] = self._min_len(df)
        if "valid" not in out:
            out["train"], out["valid"] = self._carve_valid(out["train"])
        if self.drop_unseen:
            known = pd.Index(out["train"]["item_id"].unique())
            for name in ("valid", "test"):
                out[name], stats[f"{name}_unseen"] = drop_unseen(out[name], known, self.min_length)
        train, valid, test = (_finish(out[k]) for k in ("train", "valid", "test"))
        if train.empty or test.empty:
            raise DataError("the train or test file has no session of at least min_length events")
        if set(train["session_id"].unique()) & set(test["session_id"].unique()):
            raise DataError("split leakage: the train and test files share session ids")
        if self.valid_path is None:
            check_no_leakage(train, valid, valid.iloc[0:0])
        ordinal = self._resolved_unit == "ordinal"
        stats["time_unit"] = self._resolved_unit
        for name, frame in (("train", train), ("valid", valid), ("test", test)):
            stats[name] = _describe(frame, ordinal=ordinal)
        stats["targets"] = {"mode": self.targets}
        valid, stats["targets"]["valid"] = mark_targets(valid, self.targets)
        test, stats["targets"]["test"] = mark_targets(test, self.targets)
        return Dataset(train=train, valid=valid, test=test, stats=stats, items=None)

    def _carve_valid(self, train: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The latest ``valid_fraction`` of sessions (by last event time) become validation."""
        if self.valid_fraction <= 0 or train.empty:
            return train, train.iloc[0:0]
        ends = train.groupby("session_id", sort=False)["ts"].agg(["min", "max"])
        ends = ends.sort_values(["max", "min"], kind="stable")
        n_valid = int(round(len(ends) * self.valid_fraction))
        if n_valid == 0:
            return train, train.iloc[0:0]
        valid_ids = ends.index[-n_valid:]
        first_valid_start = ends.loc[valid_ids, "min"].min()
        # train keeps only sessions that end before the first validation session starts (no overlap)
        train_ids = ends.index[:-n_valid][ends["max"].iloc[:-n_valid] < first_valid_start]
        is_valid = train["session_id"].isin(valid_ids)
        return train[train["session_id"].isin(train_ids)], train[is_valid]
