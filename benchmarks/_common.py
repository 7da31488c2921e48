"""Helpers shared by the benchmark scripts: loading session-rec style TSV files as event frames."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recframe.interfaces import DataError

# session-rec / GRU4Rec column names and recframe's event-frame names.
TSV_COLUMNS = {"SessionId": "session_id", "ItemId": "item_id", "Time": "ts"}


def load_tsv_events(path: str | Path) -> pd.DataFrame:
    """Read a ``SessionId, ItemId, Time`` TSV (optionally gzipped) as a recframe event frame.

    Ids become strings (SKUs are strings everywhere in recframe), ``ts`` int64, and the frame is
    sorted by session then time, as the event-frame contract asks.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"no such file: {p}")
    df = pd.read_csv(p, sep="\t", dtype={"SessionId": str, "ItemId": str})
    missing = sorted(set(TSV_COLUMNS) - set(df.columns))
    if missing:
        raise DataError(f"{p}: missing column(s) {', '.join(missing)}; expected SessionId, ItemId, Time")
    df = df[list(TSV_COLUMNS)].rename(columns=TSV_COLUMNS)
    df["ts"] = pd.to_numeric(df["ts"]).astype("int64")
    return df.sort_values(["session_id", "ts"], kind="stable").reset_index(drop=True)


def load_split(directory: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``DIR/train.tsv.gz`` and ``DIR/test.tsv.gz`` as event frames."""
    d = Path(directory)
    return load_tsv_events(d / "train.tsv.gz"), load_tsv_events(d / "test.tsv.gz")
