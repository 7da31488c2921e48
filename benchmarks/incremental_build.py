"""Incremental dbt build of a Parquet lake read in place: first build vs the re-run after a day is appended.

Writes a hive-partitioned lake (``day=YYYY-MM-DD``) of synthetic Coveo-layout events without its
last day, builds the warehouse in place (first build, from scratch), appends the last day's partition
as a loader would, and builds again (incremental). Reports both dbt build times, their ratio (the
issue's target: at most 0.1), the slowest models of each build, and whether the incremental build
gives the same sessions as a full refresh (``output_hash`` of the sequences; ``--check``).

By default both builds run in this process, one after the other, so the incremental build finds dbt
imported and its classes set up by the first. ``--fresh-process`` runs each build in a process of
its own, as a daily scheduled re-run would: the incremental build then pays dbt's import and
start-up too (about 2-3 s of CPU on this machine).

    python benchmarks/incremental_build.py --events 2000000 --days 30 [--check] [--fresh-process]

With ``--work DIR`` the lake is kept there with a ``lake.json`` naming its settings and its last
day's partitions: a later run with the same settings moves those partitions back out of the lake and
reuses it (writing 50M events takes minutes), and starts both builds from nothing as before.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, measure, output_hash, progress, side, summary  # noqa: E402

os.environ.setdefault("DO_NOT_TRACK", "true")
DAY_MS = 86_400_000
SPLIT = {"test_days": 2, "valid_days": 1, "min_length": 2}


def write_lake(events: int, items: int, days: int, seed: int, lake: Path) -> dict:
    """The lake's partitions, one per day; the last day goes to ``lake.parent / 'last_day'``.

    The generator's final calendar day holds only a few sessions' tails, so "the last day" is the last
    full day together with that remainder.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from recframe.datasource.synthetic import generate_events, sessions_for_events

    data = generate_events(n_sessions=sessions_for_events(events), n_items=items, n_days=days, seed=seed)
    # the text columns stay dictionary-encoded until a day is written: as plain text, 50M events'
    # 64-character ids would pass 2 GB in one column and fill the memory
    table = data.events
    plain = pa.schema([(f.name, pa.string() if pa.types.is_dictionary(f.type) else f.type) for f in table.schema])
    ts = table["server_timestamp_epoch_ms"]
    day = pc.cast(pc.divide(ts, DAY_MS), pa.int64())
    last = pc.max(day).as_py() - 1
    for d in sorted(pc.unique(day).to_pylist()):
        part = table.filter(pc.equal(day, d)).cast(plain)
        folder = (lake if d < last else lake.parent / "last_day") / f"day={d}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(part, folder / "part-0.parquet")
    return {"rows": table.num_rows, "last_day_rows": int(pc.sum(pc.greater_equal(day, last)).as_py())}


def _reuse_lake(work: Path, settings: dict) -> dict | None:
    """The counts of the lake kept under ``work`` when it was written with ``settings``, its last day's
    partitions moved back to ``work / 'last_day'`` and everything else under ``work`` removed; else None."""
    meta = work / "lake.json"
    if not meta.exists() or not (work / "lake").is_dir():
        return None
    kept = json.loads(meta.read_text())
    if kept.get("settings") != settings:
        return None
    (work / "last_day").mkdir(exist_ok=True)
    for name in kept["last_day_partitions"]:
        if (work / "lake" / name).exists():
            shutil.move(str(work / "lake" / name), str(work / "last_day" / name))
    for entry in work.iterdir():
        if entry.name not in ("lake", "last_day", "lake.json"):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    return kept["counts"]


def _sequences_hash(warehouse: Path) -> str:
    """A hash of every session (id, items, timestamps), computed in the warehouse.

    Each row's DuckDB hash, summed as a 128-bit integer (so duplicated rows do not cancel out, as
    with an exclusive or), with the row count: reading 7M sessions' lists into Python to hash them
    there took minutes and 14 GB at 50M events.
    """
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        row = con.execute(
            "select count(*), sum(hash(session_uid, items, timestamps)::hugeint),"
            " sum(hash(timestamps, items, session_uid)::hugeint) from main.session_sequences"
        ).fetchone()
    finally:
        con.close()
    return output_hash([str(v) for v in row])


def _slowest(state: Path, n: int = 10) -> dict[str, float]:
    results = json.loads((state / "target" / "run_results.json").read_text())["results"]
    times = {r["unique_id"].split(".")[-1] if r["unique_id"].startswith("model") else r["unique_id"].split(".")[2]:
             round(r["execution_time"], 2) for r in results}  # fmt: skip
    return dict(sorted(times.items(), key=lambda kv: -kv[1])[:n])


def _build(work: Path, lake: Path, name: str, full_refresh: bool = False) -> dict:
    from recframe.datasource.duckdb import DuckDBSource

    warehouse = work / "warehouse.duckdb"
    src = DuckDBSource(
        warehouse=warehouse,
        raw={"format": "coveo", "mode": "in_place", "path": str(lake / "*" / "*.parquet")},
        dbt={"full_refresh": full_refresh},
        split=SPLIT,
    )
    progress(f"{name} build ...")
    with measure() as m:
        src.build(work / name)
    state = warehouse.parent / f".{warehouse.name}.dbt"
    timings = {k: round(v, 2) for k, v in src.timings.items() if isinstance(v, (int, float))}
    out = side(m, _sequences_hash(warehouse), timings=timings, slowest_models=_slowest(state))
    progress(f"{name}: {m.wall_s:.1f} s")
    return out


def _build_fresh(work: Path, lake: Path, name: str, full_refresh: bool = False) -> dict:
    """:func:`_build` in a child process (its own import of dbt); the side comes back as JSON."""
    import subprocess

    cmd = [sys.executable, __file__, "--build-one", name, "--work", str(work)]
    if full_refresh:
        cmd.append("--full-refresh")
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--check", action="store_true", help="also run a full refresh and compare the sessions")
    ap.add_argument("--fresh-process", action="store_true", help="run each build in a process of its own")
    ap.add_argument("--build-one", default=None, help=argparse.SUPPRESS)  # the child of --fresh-process
    ap.add_argument("--full-refresh", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.build_one:
        emit(_build(args.work, args.work / "lake", args.build_one, full_refresh=args.full_refresh))
        return

    work = args.work or Path(tempfile.mkdtemp(prefix="rf_incremental_"))
    lake = work / "lake"
    settings = {"events": args.events, "items": args.items, "days": args.days, "seed": args.seed}
    counts = _reuse_lake(work, settings) if work.exists() else None
    if counts is not None:
        progress(f"reusing the lake under {lake}")
    else:
        if work.exists():
            shutil.rmtree(work)
        progress(f"writing the lake under {lake} ...")
        counts = write_lake(args.events, args.items, args.days, args.seed, lake)
        last_day = sorted(p.name for p in (work / "last_day").iterdir())
        meta = {"settings": settings, "counts": counts, "last_day_partitions": last_day}
        (work / "lake.json").write_text(json.dumps(meta))
    build = _build_fresh if args.fresh_process else _build
    sides = {"first_build": build(work, lake, "first")}
    for folder in (work / "last_day").iterdir():  # the loader appends the last day
        shutil.move(str(folder), str(lake / folder.name))
    sides["incremental_build"] = build(work, lake, "incremental")
    if args.check:
        sides["full_refresh"] = build(work, lake, "full", full_refresh=True)
    ratio = sides["incremental_build"]["wall_s"] / sides["first_build"]["wall_s"]
    dbt_ratio = sides["incremental_build"]["timings"]["dbt_s"] / sides["first_build"]["timings"]["dbt_s"]
    result = summary(
        "incremental_build",
        sides,
        events=counts["rows"],
        last_day_events=counts["last_day_rows"],
        days=args.days,
        fresh_process=args.fresh_process,
        ratio=round(ratio, 3),
        dbt_ratio=round(dbt_ratio, 3),
        target_ratio=0.1,
    )
    if args.check:
        result["incremental_equals_full_refresh"] = (
            sides["incremental_build"]["output_hash"] == sides["full_refresh"]["output_hash"]
        )
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    emit(result)


if __name__ == "__main__":
    main()
