"""What every benchmark script shares: one output schema, the measurements behind it, TSV loading.

Every benchmark ends its output with one JSON object on the last line, built by :func:`summary`:

.. code-block:: text

    {"benchmark": NAME,
     "sides":  {SIDE: {"wall_s", "cpu_s", "peak_rss_mb", "output_hash", ...the benchmark's own figures}},
     "levels": {SIDE: [{"concurrency", "rps", "p50_ms", "p99_ms", "errors", ...}, ...]},   load tests only
     "best":   {SIDE: {...one of its levels..., "within_p99": true|false}},               load tests only
     "machine": {"cpus", "load_avg_1m"},
     ...the run's settings (dataset, device, ...)}

A *side* is one thing measured: a model in the accuracy and training benchmarks, a system in the
serving and data benchmarks. Its four common fields mean the same everywhere, so two sides (or two
runs) compare without reading the script:

* ``wall_s``: wall-clock seconds of the measured work;
* ``cpu_s``: CPU seconds of the process doing it, all threads (on a shared machine the fairer figure);
* ``peak_rss_mb``: the highest resident memory of that process during the work (Linux resets the
  high-water mark on request, so sides measured one after another in one process do not inherit
  each other's peak; ``null`` where it cannot be read);
* ``output_hash``: a short hash of what the side produced (:func:`output_hash`): sides that must
  agree (the same sessions, the same answers) show equal hashes, and a run that repeats one shows
  the same hash again.

Load tests add ``levels`` (one entry per concurrency level and side) and ``best`` (per side, the
level with the highest throughput whose p99 meets the bound, :func:`best_level`).
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd

from recframe.interfaces import DataError

SIDE_FIELDS = ("wall_s", "cpu_s", "peak_rss_mb", "output_hash")
LEVEL_FIELDS = ("concurrency", "rps", "p50_ms", "p99_ms", "errors")

# session-rec / GRU4Rec column names and recframe's event-frame names.
TSV_COLUMNS = {"SessionId": "session_id", "ItemId": "item_id", "Time": "ts"}


# ------------------------------------------------------------------------------------ measuring


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process so far, all threads."""
    return time.process_time()


def peak_rss_mb() -> float | None:
    """This process's resident-memory high-water mark in MiB.

    ``VmHWM`` is read first: it belongs to the address space the process runs in, while
    ``ru_maxrss`` survives ``exec`` and would report a parent's peak in a child started by
    ``subprocess``.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024.0, 1)  # kB
    except OSError:
        pass
    try:
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)  # Linux: KiB
    except (OSError, ValueError):
        return None


def reset_peak_rss() -> bool:
    """Reset the high-water mark to the current resident size (Linux >= 4.0); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


@dataclass
class Measurement:
    """Wall time, CPU time and peak memory of one block of work (filled when the block ends)."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float | None = None


@contextmanager
def measure() -> Iterator[Measurement]:
    """``with measure() as m:`` times the block and reads this process's peak memory during it."""
    m = Measurement()
    reset_peak_rss()
    t0, c0 = time.perf_counter(), cpu_seconds()
    try:
        yield m
    finally:
        m.wall_s = time.perf_counter() - t0
        m.cpu_s = cpu_seconds() - c0
        m.peak_rss_mb = peak_rss_mb()


# ------------------------------------------------------------------------------------ hashing


def _canonical(obj: Any) -> Any:
    """JSON-able form with a stable spelling: numpy scalars and arrays as Python values."""
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _canonical(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return repr(obj)
    return obj


def output_hash(obj: Any) -> str:
    """A 16-hex-digit SHA-256 of a side's output.

    DataFrames hash column names and values row by row (``pandas.util.hash_pandas_object``, which
    gives a categorical column the hash of its values), so sort and name columns the same way before
    comparing sides. Arrays hash dtype, shape and bytes; bytes and str hash as they are; anything else
    as canonical JSON (sorted keys), which is how metric dicts and lists of answers are hashed.
    """
    h = hashlib.sha256()
    if isinstance(obj, pd.DataFrame):
        h.update(json.dumps([str(c) for c in obj.columns]).encode())
        h.update(pd.util.hash_pandas_object(obj, index=False).to_numpy().tobytes())
    elif isinstance(obj, np.ndarray):
        h.update(f"{obj.dtype.str}{obj.shape}".encode())
        h.update(np.ascontiguousarray(obj).tobytes())
    elif isinstance(obj, bytes):
        h.update(obj)
    elif isinstance(obj, str):
        h.update(obj.encode())
    else:
        h.update(json.dumps(_canonical(obj), sort_keys=True, separators=(",", ":")).encode())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------ the schema


def side(m: Measurement | None = None, output_hash: str | None = None, **figures: Any) -> dict[str, Any]:
    """One side's entry: the four common fields first, then the benchmark's own figures.

    ``m`` supplies ``wall_s``, ``cpu_s`` and ``peak_rss_mb``; a side measured elsewhere (a child
    process) passes them as figures instead.
    """
    out: dict[str, Any] = {}
    if m is not None:
        out.update(wall_s=round(m.wall_s, 3), cpu_s=round(m.cpu_s, 3), peak_rss_mb=m.peak_rss_mb)
    out["output_hash"] = output_hash
    for key, value in figures.items():
        out[key] = round(value, 3) if key in ("wall_s", "cpu_s") and value is not None else value
    return {key: out[key] for key in SIDE_FIELDS if key in out} | out


def best_level(levels: Sequence[Mapping[str, Any]], p99_ms: float) -> dict[str, Any] | None:
    """The level with the highest ``rps`` among those with no errors and ``p99_ms`` within the bound.

    When no level meets the bound the highest-throughput level (error-free ones first) is returned
    with ``within_p99: false``, so the reader sees the side has no level that meets it.
    """
    if not levels:
        return None
    ok = [lv for lv in levels if not lv["errors"] and lv["p99_ms"] is not None and lv["p99_ms"] <= p99_ms]
    if ok:
        return {**max(ok, key=lambda lv: lv["rps"]), "within_p99": True}
    clean = [lv for lv in levels if not lv["errors"]] or list(levels)
    return {**max(clean, key=lambda lv: lv["rps"]), "within_p99": False}


def machine() -> dict[str, Any]:
    """How big and how busy the machine was: read beside any timing from a shared machine."""
    return {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)}


def summary(
    benchmark: str,
    sides: Mapping[str, Mapping[str, Any]],
    levels: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    best: Mapping[str, Any] | None = None,
    **context: Any,
) -> dict[str, Any]:
    """The last-line object; raises ``ValueError`` on a side or level that lacks a common field."""
    for name, entry in sides.items():
        missing = [k for k in SIDE_FIELDS if k not in entry]
        if missing:
            raise ValueError(f"side {name!r} lacks {', '.join(missing)}")
    if (levels is None) != (best is None):
        raise ValueError("a load test reports both levels and best")
    out: dict[str, Any] = {"benchmark": benchmark, "sides": dict(sides)}
    if levels is not None:
        for name, rows in levels.items():
            for row in rows:
                missing = [k for k in LEVEL_FIELDS if k not in row]
                if missing:
                    raise ValueError(f"a level of side {name!r} lacks {', '.join(missing)}")
        out["levels"] = {k: list(v) for k, v in levels.items()}
        out["best"] = dict(best or {})
    out["machine"] = machine()
    out.update(context)
    return out


def emit(result: Mapping[str, Any], stream: TextIO | None = None) -> None:
    """Print ``result`` as the last line of stdout (stderr flushed first, so progress stays above it)."""
    sys.stderr.flush()
    print(json.dumps(result), file=stream or sys.stdout, flush=True)


def progress(message: str) -> None:
    """One progress line on stderr: stdout's last line is reserved for the JSON result."""
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------ training


def transitions(events: pd.DataFrame) -> int:
    """Training transitions as GRU4Rec's official code counts them: events minus sessions.

    A session of n events gives n - 1 (input, target) pairs; a one-event session gives none.
    """
    return int(len(events) - events["session_id"].nunique())


def epoch_progress(label: str, n_transitions: int) -> Any:
    """A Lightning callback that prints one line per finished epoch on stderr.

    The line says the epoch, its wall time, transitions per second and the logged losses and
    validation metrics, so a long run shows how it is going between its first and last line.
    """
    import lightning as L

    class EpochProgress(L.Callback):
        def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            self._t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            if trainer.sanity_checking:
                return
            seconds = time.perf_counter() - getattr(self, "_t0", time.perf_counter())
            metrics = dict(trainer.callback_metrics)
            loss = getattr(pl_module, "epoch_train_loss", None)
            if loss is not None:
                metrics["train_loss"] = loss
            shown = "".join(f"  {k} {float(v):.4f}" for k, v in sorted(metrics.items()))
            total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else "?"
            progress(
                f"[{label}] epoch {trainer.current_epoch + 1}/{total}: {seconds:.1f}s, "
                f"{n_transitions / max(seconds, 1e-9):,.0f} transitions/s{shown}"
            )

    return EpochProgress()


class BatchSpan:
    """What a training run's batches took, from the first batch's start to the last batch's end.

    The fit's wall time also holds data preparation (vocabulary, schedules), the trainer's set-up and
    the end-of-fit copies; this span is the training alone, the figure to compare with a reference
    implementation's training time. On a GPU the clock is read after a ``torch.cuda.synchronize``
    at the first batch and at each epoch's end, so queued kernels count where they run. One object
    can be handed to several fits (``--eval-at`` resumes): the spans add up.
    """

    def __init__(self) -> None:
        self.seconds = 0.0  # summed first-to-last-batch time of every fit
        self.batches = 0
        self.epochs = 0.0  # epochs trained, a partial last epoch (a time limit) as a fraction
        self.first_start: float | None = None  # perf_counter at the current fit's first batch
        self.last_end: float | None = None

    def callback(self) -> Any:
        """A fresh Lightning callback that adds the next fit's batches to this span."""
        import lightning as L
        import torch

        span = self

        def now(pl_module: L.LightningModule) -> float:
            if pl_module.device.type == "cuda":
                torch.cuda.synchronize(pl_module.device)
            return time.perf_counter()

        class Span(L.Callback):
            def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
                span.first_start = span.last_end = None
                self.in_epoch = 0

            def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
                if span.first_start is None:
                    span.first_start = now(pl_module)

            def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
                span.batches += 1
                self.in_epoch += 1
                span.last_end = time.perf_counter()

            def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
                if span.first_start is None:
                    return
                span.last_end = now(pl_module)  # the epoch's batches, their kernels finished
                total = trainer.num_training_batches
                full = isinstance(total, int) and total > 0
                span.epochs += min(1.0, self.in_epoch / total) if full else 1.0
                self.in_epoch = 0

            def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
                if span.first_start is not None and span.last_end is not None:
                    span.seconds += span.last_end - span.first_start

        return Span()


# ------------------------------------------------------------------------------------ data


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
