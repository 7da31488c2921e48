"""The data benchmark's input: synthetic Coveo-style events with real-world dirt, as CSV or a Parquet lake.

The clean events come from recframe's generator (:mod:`recframe.datasource.synthetic`); :func:`dirty`
then gives a share of the rows each kind of dirt the data step's rules deal with, so that every
rule of ``benchmarks/data_sides.py`` changes the output and a side that skips one gets another
hash. Run as a script (by ``data_scale.py``, which caches inputs under a key that includes a hash
of this file and of the generator's) it writes one input and a JSON note of its size:

    python benchmarks/data_input.py csv|lake PATH NOTE EVENTS ITEMS DAYS SEED DIRT
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (ROOT, HERE):  # recframe, and the benchmark's own modules
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from data_sides import ACTION, DAY_MS, EVENT_TYPE, SESSION, SKU, TS  # noqa: E402 - the columns the sides read

URL = "hashed_url"  # read by no side

#: 2100-01-01: a timestamp after any load time
FAR_FUTURE_MS = 4_102_444_800_000


def clean_events(events: int, items: int, days: int, seed: int) -> dict[str, pa.Array]:
    """About ``events`` raw rows from recframe's generator, one array per column, the text columns
    still dictionary-encoded (a column becomes plain text where :func:`dirty` changes it, and at the
    latest when written): 50M rows of 64-character hashes as plain text would not fit in memory twice."""
    from recframe.datasource.synthetic import generate_events, sessions_for_events

    data = generate_events(n_sessions=sessions_for_events(events), n_items=items, n_days=days, seed=seed)
    return {name: _single(col) for name, col in zip(data.events.column_names, data.events.columns, strict=True)}


def _single(col: pa.ChunkedArray) -> pa.Array:
    """The column as one array, without a copy where it already is one (``combine_chunks`` copies)."""
    return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()


#: rows per block of a text column: every compute kernel then works on blocks of well under 2 GB
#: (some of pyarrow's string kernels fail past 2 GB of text in one array, even ``large_string``)
BLOCK = 4_000_000


def _text(col: pa.Array) -> pa.ChunkedArray:
    """A column as plain text, in blocks of :data:`BLOCK` rows."""
    return pa.chunked_array([col.slice(i, BLOCK).cast(pa.string()) for i in range(0, len(col), BLOCK)], pa.string())


def dirty(cols: dict[str, pa.Array], rate: float, seed: int) -> pa.Table:
    """The events of ``cols`` with about ``rate`` of their rows given each kind of dirt, plus bot
    sessions and the session-length boundaries (one session of exactly the maximum length, one just
    over). ``cols`` is consumed: its entries are replaced one by one, so that memory holds one copy
    of each column (plus the one being changed)."""
    rng = np.random.default_rng(seed + 7)
    n = len(cols[TS])

    def rows(share: float) -> pa.Array:
        return pa.array(rng.random(n) < share)

    def where(mask: pa.Array, value: object, column: str) -> None:
        if pa.types.is_dictionary(cols[column].type):
            cols[column] = _text(cols[column])
        cols[column] = pc.if_else(mask, value, cols[column])

    def text(value: str | None) -> pa.Scalar:
        return pa.scalar(value, pa.string())

    def some(values: pa.Array) -> pa.Array:
        """``rng.choice(values, n)`` as text, drawn as indices (the same draws, no Python strings)."""
        return _text(values.take(pa.array(rng.integers(0, len(values), n))))

    is_detail = pc.fill_null(pc.equal(_text(cols[ACTION]), "detail"), False)
    is_add = pc.fill_null(pc.equal(_text(cols[ACTION]), "add"), False)
    is_purchase = pc.fill_null(pc.equal(_text(cols[ACTION]), "purchase"), False)
    is_product = pc.equal(_text(cols[EVENT_TYPE]), "event_product")
    sku = cols[SKU]  # dictionary-encoded: the SKUs before any dirt, at a few bytes per row
    where(rows(rate), pc.utf8_upper(_text(sku)), SKU)  # case differs, same item
    where(rows(rate), pc.binary_join_element_wise(text(" "), cols[SKU], text("  "), text("")), SKU)  # padded, same item
    where(pc.and_(rows(rate / 4), is_product), text("  "), SKU)  # blank: rejected
    where(pc.and_(rows(rate / 4), is_product), text(None), SKU)  # missing: rejected
    where(
        rows(rate / 10), pc.binary_join_element_wise(cols[SKU], text("\ufffd"), text("")), SKU
    )  # bad decode: rejected
    where(
        rows(rate / 4), pc.binary_join_element_wise(_text(cols[SESSION]), text(" "), text("")), SESSION
    )  # padded: same
    where(rows(rate / 10), text(None), SESSION)  # no session: rejected
    aliases = some(pa.array(["VIEW", " Detail ", "click", "pv"]))
    where(pc.and_(rows(rate), is_detail), aliases, ACTION)  # other spellings of detail: kept
    del aliases
    for is_old, new in ((is_add, "Add_To_Cart"), (is_purchase, "BUY")):
        where(pc.and_(rows(rate), is_old), text(new), ACTION)
    from_type = pc.and_(rows(rate / 4), is_detail)  # the action in the event type: kept
    where(from_type, text("view"), EVENT_TYPE)
    where(from_type, text(None), ACTION)
    where(pc.and_(rows(rate / 4), is_product), text("zoom"), ACTION)  # unknown: rejected
    pageview = pc.if_else(rows(rate), text("PageView "), cols[EVENT_TYPE])
    where(pc.invert(is_product), pageview, EVENT_TYPE)
    del pageview
    where(pc.and_(rows(rate), pc.invert(is_product)), some(pc.drop_null(sku)), SKU)  # pageview of an item
    where(rows(rate / 4), pa.scalar(None, pa.int64()), TS)  # no time: rejected
    where(rows(rate / 20), pa.scalar(FAR_FUTURE_MS), TS)  # in the future: rejected
    out = pa.table(cols)
    cols.clear()
    copies = out.filter(rows(rate))  # exact duplicates: counted once
    return pa.concat_tables([out, copies, _long_sessions(out, rng, max(2, int(n * rate / 2000)))])


def _long_sessions(table: pa.Table, rng: np.random.Generator, bots: int) -> pa.Table:
    """``bots`` sessions of 250 detail events, one of exactly 200 (kept) and one of 201 (a bot)."""
    skus = pc.unique(pc.drop_null(table[SKU])).to_numpy(zero_copy_only=False)
    ts = table[TS].to_numpy(zero_copy_only=False)
    t0, t1 = int(np.nanmin(ts)), int(np.nanmedian(ts))
    lengths = [250] * bots + [200, 201]
    session, times = [], []
    for b, length in enumerate(lengths):
        session += [f"bot{b:04d}" + "0" * 57] * length
        start = int(rng.integers(t0, t1))
        times += list(start + 1000 * np.arange(length))
    m = len(session)
    return pa.table(
        {
            SESSION: session,
            EVENT_TYPE: ["event_product"] * m,
            ACTION: ["detail"] * m,
            SKU: list(rng.choice(skus, m)),
            TS: pa.array(times, pa.int64()),
            "hashed_url": pa.nulls(m, pa.string()),
        }
    ).cast(table.schema)


#: the written files' schema: every text column plain ``string``, as Coveo's export is read
SCHEMA = pa.schema([(c, pa.int64() if c == TS else pa.string()) for c in (SESSION, EVENT_TYPE, ACTION, SKU, TS, URL)])


def batches(table: pa.Table, rows: int = 1_000_000) -> pa.RecordBatchReader:
    """The table in blocks of ``rows``, each cast to :data:`SCHEMA` as it is read: the writers never
    hold a second copy of the whole table, nor a text column of more than 2 GB."""
    table = table.select(SCHEMA.names)
    return pa.RecordBatchReader.from_batches(SCHEMA, (b.cast(SCHEMA) for b in table.to_batches(max_chunksize=rows)))


def write_csv(table: pa.Table, path: Path) -> None:
    """The table as Coveo ships it: CSV with a header, nothing quoted (no value has a comma)."""
    import pyarrow.csv as pacsv

    with pacsv.CSVWriter(path, SCHEMA, write_options=pacsv.WriteOptions(quoting_style="none")) as w:
        for batch in batches(table):
            w.write_batch(batch)


def write_lake(table: pa.Table, root: Path) -> None:
    """The table as a loader leaves it in a lake: one Parquet file per ``dt=YYYY-MM-DD`` folder
    (``dt=unknown`` for rows without a time), its rows in time order as a loader appends them, so
    that its row groups (up to a million rows) hold tight timestamp ranges. (A partitioned write of
    the table in the generator's session order gave every day's file a small row group from each
    block of the table: 1,566 of about 500 rows each per file at 50M events.)"""
    import datetime as dt

    import pyarrow.parquet as pq

    day = pc.divide(table[TS], DAY_MS)  # integer division: whole days since the epoch
    for d in pc.unique(day).to_pylist():
        if d is None:
            part, name = table.filter(pc.is_null(day)), "unknown"
        else:
            part = table.filter(pc.equal(day, d))
            name = (dt.datetime(1970, 1, 1) + dt.timedelta(days=d)).strftime("%Y-%m-%d")
        folder = root / f"dt={name}"
        folder.mkdir(parents=True, exist_ok=True)
        # one day at a time: a day's text columns stay far below 2 GB when sorted (concatenated)
        pq.write_table(part.select(SCHEMA.names).cast(SCHEMA).sort_by(TS), folder / "part-0.parquet")


def make(kind: str, path: Path, events: int, items: int, days: int, seed: int, dirt: float) -> dict:
    """Generate, dirty and write one input; returns its row count, size and time taken."""
    t0 = time.perf_counter()
    cols = clean_events(events, items, days, seed)
    table = dirty(cols, dirt, seed) if dirt else pa.table(cols)
    del cols
    (write_lake if kind == "lake" else write_csv)(table, path)
    files = path.rglob("*.parquet") if kind == "lake" else [path]
    size = sum(f.stat().st_size for f in files)
    return {"rows": table.num_rows, "mb": round(size / 2**20, 1), "seconds": round(time.perf_counter() - t0, 1)}


if __name__ == "__main__":
    kind, path, note, events, items, days, seed, dirt = sys.argv[1:]
    info = make(kind, Path(path), int(events), int(items), int(days), int(seed), float(dirt))
    tmp = Path(note + ".tmp")
    tmp.write_text(json.dumps(info))
    tmp.replace(note)
