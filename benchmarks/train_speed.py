"""Training speed of the neural models (events per second) on the current device, cpu or cuda.

Each model is composed exactly as the CLI composes it (``conf/config.yaml`` + ``model=NAME`` +
optional ``experiment=PRESET`` + ``--set`` overrides), trained for ``--epochs`` epochs on DIR's
training events (or a generated Markov-chain data set when no ``--dataset`` is given), and timed.
``--evaluate`` also scores DIR's test set with :mod:`recframe.evaluation` (full ranking, conservative
ties, every position), which makes this the script behind the GRU4Rec accuracy numbers in
docs/benchmarks.md:

    python benchmarks/train_speed.py --models gru --epochs 1
    python benchmarks/train_speed.py --dataset ../shared/data/diginetica --models gru,sasrec --epochs 1
    python benchmarks/train_speed.py --dataset ../shared/data/diginetica --models gru \\
        --experiment gru4rec_diginetica --epochs 10 --evaluate --device cuda

Progress goes to stderr, one line per epoch; the last line of stdout is one JSON object in the
benchmarks' common schema (``benchmarks/_common.py``): ``{"benchmark": "train_speed", "device",
"sides": {MODEL: {"wall_s", "cpu_s", "peak_rss_mb", "output_hash", "transitions", "events",
"epochs", "train_s", "transitions_per_s", "events_per_s", ...}}, "errors", "machine"}``.
``transitions`` counts training transitions per epoch as GRU4Rec's official code does (events minus
sessions) and ``events`` the events; ``wall_s``/``cpu_s`` are the training's wall and process CPU time
(on a shared machine, wall time alone misleads). ``output_hash`` hashes the metrics with ``--evaluate``,
else the trained weights.

Where the time goes, per model: ``load_s`` reads the files (once, shared by the models);
``train_s`` is the whole ``fit`` (vocabulary, schedules, the trainer's set-up, the batches, the
end-of-fit copies); ``batches_s`` the batches alone, from the first one's start to the last one's end
(:class:`_common.BatchSpan`), with ``batch_transitions_per_s`` the throughput over it and
``before_first_batch_s`` the preparation inside ``fit``; ``eval_s`` the full evaluation (and with
``--eval-repeats 2`` a second, warm one in ``eval_s_runs``). ``--precision`` sets the trainer's
precision (e.g. ``32-true`` against the GPU preset's ``bf16-mixed``) and ``--max-seconds`` caps each
fit (Lightning's ``max_time``), so a slow run still reports the epochs it trained. A model that fails
is reported under ``errors`` and the others still run; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("HYDRA_FULL_ERROR", "0")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="train_speed.py",
        description="Training events/s of recframe's neural models (gru, sasrec, lstm) on cpu or cuda.",
        epilog="Last line of output: one JSON object with the results.",
    )
    p.add_argument("--dataset", default=None, help="folder with train.tsv.gz (+ test.tsv.gz for --evaluate)")
    p.add_argument("--models", default="gru,sasrec", help="comma-separated conf/model names (default gru,sasrec)")
    p.add_argument("--experiment", default=None, help="an experiment preset to compose, e.g. gru4rec_diginetica")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: cuda if available")
    p.add_argument("--epochs", type=int, default=1, help="epochs to train (default 1)")
    p.add_argument("--max-events", type=int, default=None, help="train on the first N events only")
    p.add_argument("--evaluate", action="store_true", help="evaluate on DIR/test.tsv.gz after training")
    p.add_argument(
        "--eval-at",
        default=None,
        metavar="E1,E2,...",
        help="with --evaluate: also evaluate after these epochs (training resumes from last.ckpt in between)",
    )
    p.add_argument(
        "--precision", default=None, help="trainer precision, e.g. bf16-mixed or 32-true (default: the preset's)"
    )
    p.add_argument(
        "--max-seconds", type=float, default=None, help="stop each fit after this many seconds (Lightning max_time)"
    )
    p.add_argument("--eval-repeats", type=int, default=1, help="with --evaluate: time the evaluation this many times")
    p.add_argument("--work-dir", default=None, help="checkpoints and metrics.csv go here (default: a temp folder)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=42, help="seed handed to fit")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="Hydra override, repeatable"
    )
    p.add_argument("--synthetic-sessions", type=int, default=20_000, help="sessions of generated data (no --dataset)")
    return p.parse_args(argv)


def compose(
    name: str,
    experiment: str | None,
    overrides: list[str],
    device: str,
    epochs: int,
    checkpoints: bool,
    precision: str | None = None,
    max_seconds: float | None = None,
):
    """Model config and trainer dict, composed by Hydra as ``python -m recframe`` would."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    groups = [f"model={name}", f"trainer={'gpu' if device == 'cuda' else 'cpu'}"]
    if experiment:
        groups.append(f"experiment={experiment}")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=[*groups, *overrides])
    trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer.update(max_epochs=epochs, enable_checkpointing=checkpoints, enable_progress_bar=False)
    if precision:
        trainer["precision"] = precision
    if max_seconds:
        trainer["max_time"] = {"seconds": max(1, int(max_seconds))}
    return cfg.model, trainer


def synthetic(n_sessions: int, n_items: int = 2000, seed: int = 0):
    """A Markov-chain session data set (each item has 3 likely successors), as event frames."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    succ = rng.integers(0, n_items, size=(n_items, 3))
    lengths = np.minimum(2 + rng.geometric(0.25, size=n_sessions), 40)
    pop = 1.0 / np.arange(1, n_items + 1)
    items = np.empty(int(lengths.sum()), dtype=np.int64)
    start = rng.choice(n_items, size=n_sessions, p=pop / pop.sum())
    pos = 0
    for s, n in enumerate(lengths.tolist()):
        it = start[s]
        for _ in range(n):
            items[pos] = it
            pos += 1
            it = succ[it, rng.integers(3)]
    sid = np.repeat(np.arange(n_sessions), lengths)
    df = pd.DataFrame({"session_id": sid.astype(str), "item_id": items.astype(str), "ts": np.arange(len(sid))})
    cut = int(np.searchsorted(sid, int(0.9 * n_sessions)))
    return df.iloc[:cut].reset_index(drop=True), df.iloc[cut:].reset_index(drop=True)


def weights_hash(model: Any) -> str | None:
    """Hash of a trained network's parameters (None for a model without one)."""
    from _common import output_hash

    net = getattr(model, "net", None)
    if net is None:
        return None
    return output_hash(b"".join(t.detach().cpu().float().numpy().tobytes() for t in net.state_dict().values()))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import torch
    from _common import emit, load_split, load_tsv_events, progress, summary, transitions

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.perf_counter()
    if args.dataset:
        if args.evaluate:
            train, test = load_split(args.dataset)
        else:
            train, test = load_tsv_events(Path(args.dataset) / "train.tsv.gz"), None
    else:
        train, test = synthetic(args.synthetic_sessions)
    load_s = time.perf_counter() - t0
    if args.max_events:
        train = train.iloc[: args.max_events]
    n_transitions = transitions(train)
    name_of_device = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    progress(
        f"{len(train):,} training events ({n_transitions:,} transitions) read in {load_s:.1f}s; "
        f"device {name_of_device}; torch threads {torch.get_num_threads()}"
    )
    sides: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    for name in [n.strip() for n in args.models.split(",") if n.strip()]:
        try:
            sides[name] = train_one(name, args, device, name_of_device, train, test, n_transitions, load_s)
        except Exception as e:  # noqa: BLE001 - one model's failure must not lose the others' figures
            import traceback

            traceback.print_exc(file=sys.stderr)
            errors[name] = f"{type(e).__name__}: {' '.join(str(e).split())[:500]}"
            progress(f"[{name}] failed: {errors[name]}")
    result = summary(
        "train_speed",
        sides,
        device=device,
        dataset=args.dataset,
        experiment=args.experiment,
        precision=args.precision,
        seed=args.seed,
        load_s=round(load_s, 2),
        errors=errors,
    )
    emit(result)
    return 1 if errors else 0


def train_one(
    name: str,
    args: argparse.Namespace,
    device: str,
    name_of_device: str,
    train: Any,
    test: Any,
    n_transitions: int,
    load_s: float,
) -> dict[str, Any]:
    """Train (and evaluate) one model as the arguments say; its side of the summary."""
    import torch
    from _common import BatchSpan, Measurement, epoch_progress, measure, output_hash, progress, side
    from hydra.utils import instantiate

    from recframe.evaluation import evaluate
    from recframe.interfaces import FitContext

    stops = [args.epochs]
    if args.evaluate and args.eval_at:
        stops = sorted({int(e) for e in args.eval_at.split(",") if int(e) < args.epochs} | {args.epochs})
    work_dir = Path(args.work_dir or tempfile.mkdtemp(prefix="recframe-speed-")) / name
    spent = Measurement()
    span = BatchSpan()
    figures: dict[str, Any] = {}
    digest = None
    curve: list[dict[str, Any]] = []
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for stop in stops:
        model_cfg, trainer = compose(
            name, args.experiment, args.overrides, device, stop, len(stops) > 1, args.precision, args.max_seconds
        )
        trainer["callbacks"] = [epoch_progress(name, n_transitions), span.callback()]
        model = instantiate(model_cfg, _convert_="all")
        ctx = FitContext(trainer=trainer, seed=args.seed, progress=False, work_dir=work_dir)
        if device == "cuda":
            torch.cuda.synchronize()
        fit_start = time.perf_counter()
        with measure() as m:
            model.fit(train, None, ctx)
            if device == "cuda":
                torch.cuda.synchronize()
        spent.wall_s += m.wall_s
        spent.cpu_s += m.cpu_s
        spent.peak_rss_mb = max(spent.peak_rss_mb or 0.0, m.peak_rss_mb or 0.0) or None
        epochs, train_s, cpu_s = round(span.epochs, 3), spent.wall_s, spent.cpu_s
        figures = {
            "experiment": args.experiment,
            "device": name_of_device,
            "precision": trainer.get("precision"),
            "transitions": n_transitions,
            "events": len(train),
            "epochs": epochs,
            "epochs_asked": args.epochs,
            "load_s": round(load_s, 2),
            "train_s": round(train_s, 2),
            "batches_s": round(span.seconds, 2),
            "before_first_batch_s": None
            if span.first_start is None
            else round(span.first_start - fit_start, 2),  # the last fit's preparation
            "batches": span.batches,
            "transitions_per_s": round(n_transitions * epochs / max(train_s, 1e-9), 1),
            "batch_transitions_per_s": round(n_transitions * epochs / max(span.seconds, 1e-9), 1),
            "events_per_s": round(len(train) * epochs / max(train_s, 1e-9), 1),
            "s_per_epoch": round(train_s / max(epochs, 1e-9), 2),
            "cpu_s_per_epoch": round(cpu_s / max(epochs, 1e-9), 2),
            "transitions_per_cpu_s": round(n_transitions * epochs / max(cpu_s, 1e-9), 1),
        }
        if device == "cuda":
            figures["gpu_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        progress(
            f"[{name}] {epochs:g} epoch(s): fit {train_s:.1f}s, batches {span.seconds:.1f}s (cpu {cpu_s:.1f}s): "
            f"{figures['batch_transitions_per_s']:,.0f} transitions/s over the batches"
        )
        digest = weights_hash(model)
        if args.evaluate and test is not None:
            if device == "cuda" and hasattr(model, "to"):
                model.to("cuda")
            runs = []
            for _ in range(max(1, args.eval_repeats)):
                if device == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                met = evaluate(model, test)
                runs.append(round(time.perf_counter() - t0, 3))
            digest = output_hash(met)
            figures.update({k: round(met[k], 6) for k in ("hr@20", "mrr@20", "ndcg@20")})
            figures.update(eval_s=runs[0], eval_s_runs=runs, targets=met["targets"])
            curve.append({"epochs": epochs, "hr@20": figures["hr@20"], "mrr@20": figures["mrr@20"]})
            progress(
                f"[{name}] epoch {epochs:g}: HR@20 {met['hr@20']:.4f} MRR@20 {met['mrr@20']:.4f} "
                f"({met['targets']:,} targets, eval {', '.join(f'{r:.2f}s' for r in runs)})"
            )
    if len(curve) > 1:
        figures["curve"] = curve
    return side(spent, digest, **figures)


if __name__ == "__main__":
    sys.exit(main())
