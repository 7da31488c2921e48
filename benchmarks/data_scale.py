"""Data-layer scale benchmark: recframe (DuckDB ingest + dbt build + query/split) vs a pandas baseline.

Generates ``--events`` raw events in the Coveo SIGIR eCom 2021 ``browsing_train.csv`` schema, writes
them once as CSV (the format the real data set ships in), then times, each in a fresh subprocess so
that timings and peak memory do not contaminate each other:

* **recframe**: ``DuckDBSource(raw.format=coveo).load()``: ingest into a new DuckDB warehouse, the
  full ``dbt build`` (models + tests, quarantine, items) and the query + time split into
  train/valid/test frames;
* **pandas**: the same sessionisation done the usual way in pandas (``read_csv`` with the pyarrow
  engine, filter product events and kept actions, drop nulls and exact duplicates, sort, drop
  single-event and bot sessions, build each session's item list).

The last line of output is one JSON object in the benchmarks' common schema
(``benchmarks/_common.py``): ``{"benchmark": "data_scale", "sides": {"recframe": {...}, "pandas":
{...}}, "events", "sessions", "speedup", ...}``, each side with ``wall_s``, ``cpu_s``, ``peak_rss_mb``
(the child process's own) and ``output_hash`` (here a hash of the session count only). ``--repeat K``
runs K rounds of both on the same CSV (this machine's speed drifts by ~20 % within minutes): a side's
``wall_s`` is then the median, ``speedup`` the ratio of the medians, and every round is listed under
``rounds``; the CPU seconds and steps are the last round's.

    python benchmarks/data_scale.py --events 10000000 [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# this checkout's recframe (and its dbt project), not whichever one is installed: an A/B against a
# `git worktree` of older code must run the older code
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, output_hash, peak_rss_mb, side, summary  # noqa: E402

os.environ.setdefault("DO_NOT_TRACK", "true")

KEPT = ("detail", "add", "purchase")
MAX_LEN = 200


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def generate(events: int, items: int, days: int, seed: int, path: Path) -> dict:
    """Write ``events`` synthetic raw rows to ``path`` (CSV, Coveo columns); return counts."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from recframe.datasource.synthetic import generate_events, sessions_for_events

    t0 = time.perf_counter()
    data = generate_events(n_sessions=sessions_for_events(events), n_items=items, n_days=days, seed=seed)
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    table = data.events
    # plain strings for the writer; no quoting needed (hashes and names have no commas)
    table = pa.table(
        {
            name: (col.cast(pa.string()) if pa.types.is_dictionary(col.type) else col)
            for name, col in zip(table.column_names, table.columns, strict=True)
        }
    )
    pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(quoting_style="none"))
    n_rows, n_sessions = table.num_rows, data.n_sessions
    del table, data  # the parent must not hold gigabytes while the timed children run
    pa.default_memory_pool().release_unused()
    return {
        "rows": n_rows,
        "generated_sessions": n_sessions,
        "generate_s": round(gen_s, 2),
        "write_csv_s": round(time.perf_counter() - t0, 2),
        "csv_mb": round(path.stat().st_size / 2**20, 1),
    }


def child_recframe(csv: Path, work: Path) -> dict:
    from recframe.datasource.duckdb import DuckDBSource

    t0 = time.perf_counter()
    src = DuckDBSource(
        warehouse=work / "warehouse.duckdb",
        raw={"format": "coveo", "path": str(csv)},
        dbt={"vars": {"actions": list(KEPT), "max_session_length": MAX_LEN}},
        split={"test_days": 7, "valid_days": 3, "min_length": 2},
    )
    ds = src.load(work / "data")
    seconds = time.perf_counter() - t0
    sessions = sum(ds.stats[k]["sessions"] for k in ("train", "valid", "test"))
    return {
        "seconds": seconds,
        "sessions": ds.stats["query"]["sessions"],
        "split_sessions": sessions,
        "timings": ds.stats["timings"],
        "quarantined": ds.stats["quarantined"],
        "rows_accounted": ds.stats["rows_accounted"],
        "cpu_s": _cpu_s(),
        "peak_rss_mb": peak_rss_mb(),
    }


def child_pandas(csv: Path) -> dict:
    import pandas as pd

    t0 = time.perf_counter()
    df = pd.read_csv(
        csv,
        engine="pyarrow",
        usecols=["session_id_hash", "event_type", "product_action", "product_sku_hash", "server_timestamp_epoch_ms"],
    )
    df = df.dropna(subset=["session_id_hash", "server_timestamp_epoch_ms"])
    df = df[(df["event_type"] == "event_product") & df["product_action"].isin(KEPT) & df["product_sku_hash"].notna()]
    df = df.drop_duplicates(["session_id_hash", "product_sku_hash", "product_action", "server_timestamp_epoch_ms"])
    df = df.sort_values(["session_id_hash", "server_timestamp_epoch_ms"], kind="stable")
    size = df.groupby("session_id_hash", sort=False)["product_sku_hash"].transform("size")
    df = df[(size >= 2) & (size <= MAX_LEN)]
    seqs = df.groupby("session_id_hash", sort=False).agg(
        items=("product_sku_hash", list), timestamps=("server_timestamp_epoch_ms", list)
    )
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "sessions": len(seqs), "cpu_s": _cpu_s(), "peak_rss_mb": peak_rss_mb()}


def _run_child(kind: str, csv: Path, work: Path) -> dict:
    cmd = [sys.executable, __file__, "--_child", kind, "--_csv", str(csv), "--_work", str(work)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--events", type=int, default=1_000_000, help="raw events to generate (default 1,000,000)")
    p.add_argument("--items", type=int, default=50_000, help="catalogue size (default 50,000)")
    p.add_argument("--days", type=int, default=60, help="days the sessions span (default 60)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary one, removed)")
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of (recframe, pandas) on the same CSV; the JSON reports medians and every round (default 1)",
    )
    p.add_argument("--_child", choices=["recframe", "pandas"], help=argparse.SUPPRESS)
    p.add_argument("--_csv", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--_work", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args(argv)

    if a._child == "recframe":
        print(json.dumps(child_recframe(a._csv, a._work)))
        return
    if a._child == "pandas":
        print(json.dumps(child_pandas(a._csv)))
        return

    work = a.workdir or Path(tempfile.mkdtemp(prefix="recframe-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        csv = work / "browsing_train.csv"
        gen = generate(a.events, a.items, a.days, a.seed, csv)
        print(f"generated {gen['rows']:,} raw events ({gen['csv_mb']} MB CSV) in {gen['generate_s']} s", flush=True)
        # the CSV's ~2 GB of dirty pages would otherwise be written back ~30 s later (the kernel's
        # dirty_expire), in the middle of the first timed child: flush them before timing anything
        os.sync()
        rounds = []
        for _ in range(max(1, a.repeat)):
            # a cold start every time: a warehouse left by an earlier run (or round) would make the
            # ingest a no-op (same input fingerprint) and the dbt build incremental
            shutil.rmtree(work / "recframe", ignore_errors=True)
            rf = _run_child("recframe", csv, work / "recframe")
            print(f"recframe: {rf['seconds']:.1f} s {rf['timings']}, peak {rf['peak_rss_mb']:.0f} MB", flush=True)
            pdr = _run_child("pandas", csv, work)
            print(f"pandas:   {pdr['seconds']:.1f} s, peak {pdr['peak_rss_mb']:.0f} MB", flush=True)
            if rf["sessions"] != pdr["sessions"]:
                print(f"note: session counts differ: recframe {rf['sessions']} vs pandas {pdr['sessions']}", flush=True)
            rounds.append((rf, pdr))
        rf_s = statistics.median(rf["seconds"] for rf, _ in rounds)
        pd_s = statistics.median(pdr["seconds"] for _, pdr in rounds)
        rf, pdr = rounds[-1]
        sides = {
            "recframe": side(
                None,
                output_hash({"sessions": rf["sessions"]}),
                wall_s=rf_s,
                cpu_s=rf["cpu_s"],
                peak_rss_mb=round(max(r["peak_rss_mb"] for r, _ in rounds), 1),
                sessions=rf["sessions"],
                steps=rf["timings"],
            ),
            "pandas": side(
                None,
                output_hash({"sessions": pdr["sessions"]}),
                wall_s=pd_s,
                cpu_s=pdr["cpu_s"],
                peak_rss_mb=round(max(r["peak_rss_mb"] for _, r in rounds), 1),
                sessions=pdr["sessions"],
            ),
        }
        extra = {}
        if len(rounds) > 1:
            extra["rounds"] = [
                {
                    "recframe_s": round(rf["seconds"], 2),
                    "pandas_s": round(pdr["seconds"], 2),
                    "speedup": round(pdr["seconds"] / rf["seconds"], 2),
                }
                for rf, pdr in rounds
            ]
        # the speedup is of the medians; each round's own ratio is in "rounds"
        result = summary(
            "data_scale",
            sides,
            events=gen["rows"],
            sessions=rf["sessions"],
            speedup=round(pd_s / rf_s, 2),
            **extra,
        )
        emit(result)
    finally:
        if a.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
