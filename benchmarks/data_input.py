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

from data_sides import ACTION, EVENT_TYPE, SESSION, SKU, TS  # noqa: E402 - the columns the sides read

#: 2100-01-01: a timestamp after any load time
FAR_FUTURE_MS = 4_102_444_800_000


def clean_events(events: int, items: int, days: int, seed: int) -> pa.Table:
    """About ``events`` raw rows from recframe's generator, every column plain text but the time."""
    from recframe.datasource.synthetic import generate_events, sessions_for_events

    data = generate_events(n_sessions=sessions_for_events(events), n_items=items, n_days=days, seed=seed)
    return pa.table(
        {
            name: col.cast(pa.string()) if pa.types.is_dictionary(col.type) else col
            for name, col in zip(data.events.column_names, data.events.columns, strict=True)
        }
    )


def dirty(table: pa.Table, rate: float, seed: int) -> pa.Table:
    """``table`` with about ``rate`` of its rows given each kind of dirt, plus bot sessions and the
    session-length boundaries (one session of exactly the maximum length, one just over)."""
    rng = np.random.default_rng(seed + 7)
    n = table.num_rows
    cols = {name: table[name].combine_chunks() for name in table.column_names}

    def rows(share: float) -> pa.Array:
        return pa.array(rng.random(n) < share)

    def where(mask: pa.Array, value: object, column: str) -> None:
        cols[column] = pc.if_else(mask, value, cols[column])

    is_detail = pc.fill_null(pc.equal(cols[ACTION], "detail"), False)
    is_product = pc.equal(cols[EVENT_TYPE], "event_product")
    sku = cols[SKU]
    where(rows(rate), pc.utf8_upper(sku), SKU)  # case differs, same item
    where(rows(rate), pc.binary_join_element_wise(" ", cols[SKU], "  ", ""), SKU)  # padded, same item
    where(pc.and_(rows(rate / 4), is_product), pa.scalar("  "), SKU)  # blank: rejected
    where(pc.and_(rows(rate / 4), is_product), pa.scalar(None, pa.string()), SKU)  # missing: rejected
    where(rows(rate / 10), pc.binary_join_element_wise(cols[SKU], "\ufffd", ""), SKU)  # bad decode: rejected
    where(rows(rate / 4), pc.binary_join_element_wise(cols[SESSION], " ", ""), SESSION)  # padded: same session
    where(rows(rate / 10), pa.scalar(None, pa.string()), SESSION)  # no session: rejected
    aliases = pa.array(rng.choice(np.array(["VIEW", " Detail ", "click", "pv"]), n))
    where(pc.and_(rows(rate), is_detail), aliases, ACTION)  # other spellings of detail: kept
    for old, new in (("add", "Add_To_Cart"), ("purchase", "BUY")):
        where(pc.and_(rows(rate), pc.fill_null(pc.equal(cols[ACTION], old), False)), pa.scalar(new), ACTION)
    from_type = pc.and_(rows(rate / 4), is_detail)  # the action in the event type: kept
    where(from_type, pa.scalar("view"), EVENT_TYPE)
    where(from_type, pa.scalar(None, pa.string()), ACTION)
    where(pc.and_(rows(rate / 4), is_product), pa.scalar("zoom"), ACTION)  # unknown action: rejected
    where(pc.invert(is_product), pc.if_else(rows(rate), "PageView ", cols[EVENT_TYPE]), EVENT_TYPE)
    seen = pc.drop_null(sku).to_numpy(zero_copy_only=False)
    where(pc.and_(rows(rate), pc.invert(is_product)), pa.array(rng.choice(seen, n)), SKU)  # pageview of an item
    where(rows(rate / 4), pa.scalar(None, pa.int64()), TS)  # no time: rejected
    where(rows(rate / 20), pa.scalar(FAR_FUTURE_MS), TS)  # in the future: rejected
    out = pa.table(cols)
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


def write_csv(table: pa.Table, path: Path) -> None:
    """The table as Coveo ships it: CSV with a header, nothing quoted (no value has a comma)."""
    import pyarrow.csv as pacsv

    pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(quoting_style="none"))


def write_lake(table: pa.Table, root: Path) -> None:
    """The table as a loader leaves it in a lake: Parquet files under ``dt=YYYY-MM-DD`` folders
    (``dt=unknown`` for rows without a time)."""
    import pyarrow.dataset as ds

    day = pc.strftime(pc.cast(table[TS], pa.timestamp("ms")), format="%Y-%m-%d")
    table = table.append_column("dt", pc.fill_null(day, "unknown"))
    ds.write_dataset(
        table,
        root,
        format="parquet",
        partitioning=ds.partitioning(pa.schema([("dt", pa.string())]), flavor="hive"),
        existing_data_behavior="delete_matching",
    )


def make(kind: str, path: Path, events: int, items: int, days: int, seed: int, dirt: float) -> dict:
    """Generate, dirty and write one input; returns its row count, size and time taken."""
    t0 = time.perf_counter()
    table = (
        dirty(clean_events(events, items, days, seed), dirt, seed) if dirt else clean_events(events, items, days, seed)
    )
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
