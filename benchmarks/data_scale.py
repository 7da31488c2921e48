"""Data benchmark: recframe's data step beside Polars, tuned pandas and one hand-written DuckDB query.

Generates ``--events`` raw events in the Coveo SIGIR eCom 2021 ``browsing_train.csv`` schema, with
the dirt real clickstreams carry (exact duplicates, upper-case and padded SKUs and ids, blank SKUs,
unknown and aliased actions, missing and future timestamps, bad decodes, bots), and writes them
once: as a CSV file (the ingest case, default) or, with ``--in-place``, as a hive-partitioned
Parquet lake (cached in ``--cache-dir`` when given). Then runs each side in a fresh process, all on
the same input and producing the same train/valid/test sessions (the rules are in
``benchmarks/data_sides.py``):

* **recframe**: its data step composed from its public config (ingest: ``datasource.raw.format=coveo
  datasource.raw.path=FILE``; in place: ``datasource.raw.mode=in_place datasource.raw.path=GLOB``),
  i.e. the dbt build, the query and the time split;
* **duckdb_sql**: one hand-written DuckDB query doing the same work (the lower bound);
* **polars**: lazy, collected once on the streaming engine (skipped when polars is missing);
* **pandas**: categorical ids, Arrow-backed reading, integer codes (skipped, and said so, where the
  events would not fit in memory);
* **recframe_incremental** (in place, unless ``--no-incremental``): recframe's data step over the lake
  less its last day, then again after that day is appended, on the same warehouse: the second
  ``dbt build`` is incremental. Its splits must equal the other sides'; ``ratio`` is its build
  (the source's check and ``dbt build``) over the first one's (``benchmarks/data_incremental.py``).

Every DuckDB side runs under the same ``--memory-limit``. Each side's output is hashed in full
(every session's id, ordered items and timestamps, per split; ``data_digest.session_digest``); a side
whose hash differs from the others fails the run (exit status 1, naming the sides). A side whose
resident memory passes what the machine had available when it started, less 3 GB, is stopped and
reported as skipped with that figure (pandas is skipped before it starts when its estimate does not
fit), so that a size too big for one library does not bring the machine down.

Per side, read when its work ends (before the hashing): ``wall_s`` (from the process's start, so
start-up and imports count), ``cpu_s`` (the process's rusage, user + system, all threads) and
``peak_rss_mb`` (its resident high-water mark), and ``output_hash``; ``work_s`` is the work alone
(after the imports) and ``process_*`` the whole process as its parent's ``wait4`` saw it (hashing
included; ``process_peak_rss_mb`` is ``ru_maxrss``, which starts from the parent's own peak).
``--repeat K`` runs K rounds: wall and CPU are medians, the peak the largest. Progress goes to
stderr; the last line of stdout is the JSON of ``benchmarks/_common.py``'s schema.

    python benchmarks/data_scale.py --events 10000000 [--in-place] [--cache-dir DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# this checkout's recframe (and its dbt project), not whichever one is installed
ROOT = HERE.parent
for p in (str(ROOT), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)
import data_digest  # noqa: E402  (these three: stdlib only at import, so the parent stays small)
import data_incremental  # noqa: E402
import data_sides  # noqa: E402

os.environ.setdefault("DO_NOT_TRACK", "true")

#: pandas' peak resident memory per raw event and its base (measured: 156-170 MB at 21k events,
#: 456-491 MB at 1M, CSV and lake), with some margin
PANDAS_BYTES_PER_EVENT = 350
PANDAS_BASE_MB = 200
SKIPPED = 3  # a side's exit status when it cannot run here
#: memory left to the rest of the machine while a side runs: a side whose resident memory would eat
#: into it is stopped (and reported as skipped, with its figure)
MEMORY_MARGIN_MB = 3072


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def spawn(cmd: list[str], rss_limit_mb: float | None = None) -> tuple[int, Any, float | None]:
    """Run ``cmd``, passing its output on to stderr; its exit status, its own resource usage and,
    when it was killed for passing ``rss_limit_mb`` of resident memory, the resident MB it had then.

    The guard polls the child's ``VmRSS`` four times a second and kills it past the limit, so that a
    side too big for the machine is stopped and reported instead of bringing the machine down."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    over: list[float] = []
    done = threading.Event()
    if rss_limit_mb is not None:
        threading.Thread(target=_guard, args=(proc, rss_limit_mb, over, done), daemon=True).start()
    for line in proc.stdout:
        sys.stderr.write(line)
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage, (over[0] if over else None)


def _guard(proc: subprocess.Popen, limit_mb: float, over: list[float], done: threading.Event) -> None:
    """Kill ``proc`` once its resident memory passes ``limit_mb``; record the figure in ``over``."""
    while not done.wait(0.25):
        try:
            with open(f"/proc/{proc.pid}/status", encoding="ascii") as f:
                rss_mb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
        except (OSError, StopIteration, ValueError):
            return  # gone (or no /proc): nothing to watch
        if rss_mb > limit_mb:
            over.append(rss_mb)
            proc.kill()
            return


def available_mb() -> float | None:
    """``MemAvailable`` in MB, None where unreadable."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("MemAvailable:")) / 1024
    except (OSError, StopIteration):
        return None


def rss_limit_mb(margin_mb: float = MEMORY_MARGIN_MB) -> float | None:
    """The resident memory a side may reach: what is available now, less a margin for the rest of
    the machine (None where unknown: no guard)."""
    avail = available_mb()
    return None if avail is None else max(avail - margin_mb, 0.5 * avail)


# ------------------------------------------------------------------------------------------ the input


def recipe() -> str:
    """A short hash of the code that makes the input (the generator and its dirt): a cached input
    made by other code is made again."""
    import hashlib

    h = hashlib.sha1(usedforsecurity=False)
    for source in (HERE / "data_input.py", ROOT / "recframe" / "datasource" / "synthetic.py"):
        h.update(source.read_bytes())
    return h.hexdigest()[:8]


def prepare_input(a: argparse.Namespace, root: Path) -> tuple[data_sides.Input, dict[str, Any]]:
    """The cached (or freshly generated) CSV file or Parquet lake, made by a child process so that
    this process never holds the events (a child's ``ru_maxrss`` starts from its parent's peak)."""
    kind = "lake" if a.in_place else "csv"
    key = f"coveo-{recipe()}-e{a.events}-i{a.items}-d{a.days}-s{a.seed}-x{a.dirt:g}"
    folder = root / key
    path = folder / ("lake" if kind == "lake" else "browsing_train.csv")
    done = folder / f"{kind}.json"
    if done.exists() and path.exists():
        info = json.loads(done.read_text())
        progress(f"input: cached {kind} {path} ({info['rows']:,} raw events)")
        return data_sides.Input(kind, path), info
    if kind == "lake":
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    progress(f"input: generating {a.events:,} raw events as {kind} under {folder}")
    cmd = [sys.executable, str(HERE / "data_input.py"), kind, str(path), str(done)]
    cmd += [str(a.events), str(a.items), str(a.days), str(a.seed), str(a.dirt)]
    code, _, _ = spawn(cmd)
    if code:
        raise SystemExit(f"generating the input failed (exit status {code}); its output is above")
    info = json.loads(done.read_text())
    progress(f"input: {info['rows']:,} raw events, {info['mb']} MB, in {info['seconds']} s")
    # the file's dirty pages would otherwise be written back in the middle of the first timed side
    os.sync()
    return data_sides.Input(kind, path), info


# ------------------------------------------------------------------------------------------ one side


def run_side(name: str, inp: data_sides.Input, work: Path, memory_limit: str, fresh: bool = True) -> dict[str, Any]:
    """Run side ``name`` in a fresh process; its figures, or ``{"skipped": reason}``. ``fresh=False``
    keeps what an earlier run left in ``work`` (the incremental build's warehouse)."""
    if fresh:
        shutil.rmtree(work, ignore_errors=True)  # a cold start: a warehouse left behind would skip work
    work.mkdir(parents=True, exist_ok=True)
    result = work.parent / f"{work.name}.json"
    result.unlink(missing_ok=True)
    spawned = time.time()
    cmd = [sys.executable, __file__, "--_side", name, "--_kind", inp.kind, "--_input", str(inp.path)]
    cmd += ["--_work", str(work), "--_result", str(result), "--_spawned", repr(spawned)]
    cmd += ["--memory-limit", memory_limit]
    limit = rss_limit_mb()
    code, usage, over = spawn(cmd, limit)
    if over is not None:
        return {
            "skipped": f"stopped at {over / 1024:.1f} GB resident, past the {limit / 1024:.1f} GB this machine "
            f"could give it (available memory less {MEMORY_MARGIN_MB / 1024:.0f} GB)"
        }
    if code not in (0, SKIPPED) or not result.exists():
        raise SystemExit(f"side {name} failed (exit status {code}); its output is above")
    out = json.loads(result.read_text())
    out.update(
        process_wall_s=round(time.time() - spawned, 3),
        process_cpu_s=round(usage.ru_utime + usage.ru_stime, 3),
        process_peak_rss_mb=round(usage.ru_maxrss / 1024, 1),
    )
    return out


def own_peak_rss_mb() -> float | None:
    """This process's own resident high-water mark (``VmHWM``), None where unreadable.

    ``ru_maxrss`` is not used for it: a child started with ``vfork`` (as ``subprocess`` does)
    inherits its parent's peak in ``ru_maxrss`` (measured: 811 MB in a child whose own peak was
    11 MB), which would charge the test runner's memory to a side.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return None


def child(a: argparse.Namespace) -> int:
    """A side's process: the work, measured, then the digest of what it produced."""
    import resource

    inp = data_sides.Input(a._kind, Path(a._input))
    t0 = time.perf_counter()
    try:
        output, extras = data_sides.SIDES[a._side](inp, Path(a._work), a.memory_limit)
    except data_sides.SideSkipped as e:
        Path(a._result).write_text(json.dumps({"skipped": str(e)}))
        return SKIPPED
    work_s = time.perf_counter() - t0
    wall_s = time.time() - a._spawned
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak_mb = own_peak_rss_mb() or usage.ru_maxrss / 1024
    digest, counts = data_digest.session_digest(output)
    figures = {
        "wall_s": round(wall_s, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_mb": round(peak_mb, 1),
        "output_hash": digest,
        "work_s": round(work_s, 3),
        "splits": counts,
        **{k: v for k, v in extras.items() if v is not None},
    }
    Path(a._result).write_text(json.dumps(figures))
    return 0


# ------------------------------------------------------------------------------------------ the run


def pandas_fits(events: int) -> str | None:
    """None when pandas' estimated peak fits in 80 % of the available memory, else why not."""
    need_mb = PANDAS_BASE_MB + events * PANDAS_BYTES_PER_EVENT / 2**20
    avail_mb = available_mb()
    if avail_mb is None or need_mb <= 0.8 * avail_mb:
        return None
    return f"pandas would need about {need_mb / 1024:.1f} GB for {events:,} events; {avail_mb / 1024:.1f} GB available"


def mismatches(hashes: dict[str, set[str]]) -> list[str]:
    """Lines naming the sides whose outputs differ (from each other, or between their own rounds)."""
    lines = [
        f"{name} gave different outputs in different rounds: {sorted(h)}" for name, h in hashes.items() if len(h) > 1
    ]
    groups: dict[str, list[str]] = {}
    for name, h in hashes.items():
        groups.setdefault(min(h), []).append(name)
    if len(groups) > 1:
        lines.append("sides differ: " + "; ".join(f"{', '.join(s)} -> {h}" for h, s in groups.items()))
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--events", type=int, default=1_000_000, help="raw events to generate (default 1,000,000)")
    p.add_argument("--items", type=int, default=50_000, help="catalogue size (default 50,000)")
    p.add_argument("--days", type=int, default=60, help="days the sessions span (default 60)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--dirt", type=float, default=0.01, help="share of rows given each kind of dirt (default 0.01)")
    p.add_argument("--in-place", action="store_true", help="read a Parquet lake in place instead of ingesting a CSV")
    p.add_argument("--cache-dir", type=Path, default=None, help="keep the generated input here between runs")
    p.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary one, removed)")
    p.add_argument("--memory-limit", default="2GB", help="DuckDB memory_limit of every DuckDB side (default 2GB)")
    p.add_argument("--sides", default=",".join(data_sides.SIDES), help="comma-separated sides to run (default: all)")
    p.add_argument("--repeat", type=int, default=1, help="rounds of every side; wall and CPU are medians (default 1)")
    p.add_argument(
        "--no-incremental",
        action="store_true",
        help="in place: skip recframe's incremental side (the lake less its last day, then the day appended)",
    )
    for hidden in ("--_side", "--_kind", "--_input", "--_work", "--_result"):
        p.add_argument(hidden, help=argparse.SUPPRESS)
    p.add_argument("--_spawned", type=float, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a._side:
        return child(a)

    names = [s for s in a.sides.split(",") if s]
    unknown = sorted(set(names) - set(data_sides.SIDES))
    if unknown:
        p.error(f"unknown side(s) {', '.join(unknown)}; known: {', '.join(data_sides.SIDES)}")
    work = a.workdir or Path(tempfile.mkdtemp(prefix="recframe-data-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        inp, info = prepare_input(a, a.cache_dir or work / "input")
        skipped: dict[str, str] = {}
        if "pandas" in names and (reason := pandas_fits(info["rows"])):
            skipped["pandas"] = reason
            progress(f"pandas: skipped: {reason}")
        runs: dict[str, list[dict[str, Any]]] = {}
        for r in range(max(1, a.repeat)):
            for name in [n for n in names if n not in skipped]:
                progress(f"[round {r + 1}] {name}: running")
                out = run_side(name, inp, work / name, a.memory_limit)
                if "skipped" in out:
                    skipped[name] = out["skipped"]
                    progress(f"{name}: skipped: {out['skipped']}")
                    continue
                runs.setdefault(name, []).append(out)
                progress(
                    f"[round {r + 1}] {name}: wall {out['wall_s']:.1f} s (work {out['work_s']:.1f} s), "
                    f"cpu {out['cpu_s']:.1f} s, peak {out['peak_rss_mb']:.0f} MB, hash {out['output_hash']}"
                )
            if inp.kind == "lake" and "recframe" in runs and not a.no_incremental:
                today = time.strftime("%Y-%m-%d", time.gmtime())
                out = data_incremental.run_incremental(
                    inp, work / "incremental", a.memory_limit, run_side, today, progress
                )
                runs.setdefault("recframe_incremental", []).append(out)
                progress(
                    f"[round {r + 1}] recframe_incremental: build {out['build_s']:.1f} s against the first "
                    f"{out['first_build_s']:.1f} s (ratio {out['ratio']:.3f}, CPU {out['cpu_ratio']:.3f}), "
                    f"hash {out['output_hash']}"
                )
        return report(a, info, inp, runs, skipped)
    finally:
        if a.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def report(
    a: argparse.Namespace,
    info: dict[str, Any],
    inp: data_sides.Input,
    runs: dict[str, list[dict[str, Any]]],
    skipped: dict[str, str],
) -> int:
    """Emit the last-line JSON; 1 when the sides' outputs differ."""
    from _common import emit, side, summary

    sides = {}
    for name, rounds in runs.items():
        last = rounds[-1]
        extra = {k: v for k, v in last.items() if k not in ("wall_s", "cpu_s", "peak_rss_mb", "output_hash")}
        extra["process_peak_rss_mb"] = max(r["process_peak_rss_mb"] for r in rounds)
        sides[name] = side(
            None,
            last["output_hash"],
            wall_s=statistics.median(r["wall_s"] for r in rounds),
            cpu_s=statistics.median(r["cpu_s"] for r in rounds),
            peak_rss_mb=max(r["peak_rss_mb"] for r in rounds),
            **extra,
        )
    hashes = {name: {r["output_hash"] for r in rounds} for name, rounds in runs.items()}
    problems = mismatches(hashes)
    for line in problems:
        progress(f"MISMATCH: {line}")
    if not problems and len(runs) > 1:
        progress(f"all {len(runs)} sides produced the same sessions (hash {min(next(iter(hashes.values())))})")
    context: dict[str, Any] = {
        "mode": "in_place" if inp.kind == "lake" else "ingest",
        "events": info["rows"],
        "input_mb": info["mb"],
        "memory_limit": a.memory_limit,
        "match": not problems,
        "splits": next(iter(runs.values()))[-1]["splits"] if runs else None,
        "skipped": skipped,
    }
    if "recframe_incremental" in runs:
        last = runs["recframe_incremental"][-1]
        context["incremental"] = {k: last[k] for k in ("ratio", "cpu_ratio", "target_ratio", "appended_partitions")}
    if a.repeat > 1:
        context["rounds"] = {name: [r["wall_s"] for r in rounds] for name, rounds in runs.items()}
    emit(summary("data_scale", sides, **context))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
