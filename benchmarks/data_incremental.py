"""The data benchmark's incremental side: recframe's in-place build of the lake less its last day,
then again after that day is appended, as a daily scheduled re-run would.

The lake is linked (hard links, no copy of the data) into a folder of its own, from which the last
day is held back (:func:`appended_partitions`): what a loader would append next. The first run
builds the warehouse from scratch over the rest; the day is then moved in and the second run, in a fresh
process on the same warehouse, builds incrementally (only the new day and the sessions that reach
into it). Both runs are recframe's whole data step (``side_recframe``), so the second one's splits
must equal every other side's: the incremental build is checked against the full build of the
same events in the same run.

The target is on the builds (the source's check and ``dbt build``; the query and split are the
same work either way): ``incremental / first`` at most 0.1.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import data_sides

TARGET_RATIO = 0.1
_DAY = re.compile(r"^[^=]+=(\d{4}-\d{2}-\d{2})$")


def appended_partitions(lake: Path, today: str) -> list[Path]:
    """The partition folders a loader appends last: the latest full day of ``lake`` (``KEY=YYYY-MM-DD``,
    at least half the median day's size) and the dated ones after it, none after ``today``.

    The generator's final calendar day holds only a few sessions' tails, so it goes with the day
    before it; partitions of rows dated in the future (dirt the quarantine rejects) are not a day
    to append."""
    days = sorted(
        (m.group(1), p)
        for p in lake.iterdir()
        if p.is_dir() and (m := _DAY.match(p.name)) is not None and m.group(1) <= today
    )
    if not days:
        raise SystemExit(f"{lake} has no dated partition (KEY=YYYY-MM-DD) to hold back")
    sizes = [sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) for _, p in days]
    full = [i for i, size in enumerate(sizes) if size >= statistics.median(sizes) / 2]
    return [p for _, p in days[full[-1] if full else len(days) - 1 :]]


def linked_copy(src: Path, dest: Path) -> None:
    """``src`` re-created under ``dest`` with every file hard-linked (copied where links fail)."""
    for folder, _, files in os.walk(src):
        target = dest / Path(folder).relative_to(src)
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            try:
                os.link(Path(folder) / name, target / name)
            except OSError:
                shutil.copy2(Path(folder) / name, target / name)


def run_incremental(
    inp: data_sides.Input,
    work: Path,
    memory_limit: str,
    run_side: Callable[..., dict[str, Any]],
    today: str,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Both builds, each in a fresh process; the incremental run's figures with the first's beside
    them and the ratios. ``run_side(name, input, work, memory_limit, fresh)`` runs one side."""
    shutil.rmtree(work, ignore_errors=True)
    lake, held = work / "lake", work / "held_back"
    linked_copy(inp.path, lake)
    days = appended_partitions(lake, today)
    held.mkdir()
    for day in days:
        shutil.move(str(day), str(held / day.name))
    names = ", ".join(d.name for d in days)
    progress(f"incremental: the lake less {names}, first build ...")
    source = data_sides.Input("lake", lake)
    first = run_side("recframe", source, work / "run", memory_limit, fresh=True)
    for day in days:
        shutil.move(str(held / day.name), str(day))
    progress(f"incremental: {names} appended, incremental build ...")
    again = run_side("recframe", source, work / "run", memory_limit, fresh=False)
    shutil.rmtree(work, ignore_errors=True)

    def build_s(out: dict[str, Any], kind: str = "") -> float:
        steps = out.get("steps") or {}
        return round(steps.get(f"check_source{kind}_s", 0.0) + steps.get(f"dbt{kind}_s", 0.0), 3)

    figures = {
        "appended_partitions": [d.name for d in days],
        "build_s": build_s(again),
        "build_cpu_s": build_s(again, "_cpu"),
        "first_build_s": build_s(first),
        "first_build_cpu_s": build_s(first, "_cpu"),
        "first_wall_s": first["wall_s"],
        "first_output_hash": first["output_hash"],
        "target_ratio": TARGET_RATIO,
    }
    figures["ratio"] = round(figures["build_s"] / figures["first_build_s"], 3)
    figures["cpu_ratio"] = round(figures["build_cpu_s"] / figures["first_build_cpu_s"], 3)
    return {**again, **figures}
