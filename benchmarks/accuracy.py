"""Accuracy benchmark: train models on a session data set and rank every item for every next click.

DIR holds ``train.tsv.gz`` and ``test.tsv.gz`` (``SessionId, ItemId, Time``, as in
``../shared/data/diginetica``), or one of the other layouts :mod:`session_data` reads (YooChoose's
``train_full.tsv.gz``, REES46's raw ``events.csv.gz``). Each model is built from its ``conf/model/<name>.yaml`` through
Hydra's compose API (so ``--set`` takes the same overrides as the CLI), fitted on train and
evaluated with :mod:`recframe.evaluation`: full ranking over the catalogue, ties counted against
the target, the next item predicted at every position, items already in the session rankable.

    python benchmarks/accuracy.py --dataset ../shared/data/diginetica --models pop,vsknn
    python benchmarks/accuracy.py --dataset DIR --models vsknn --set model.k=500 --set model.sample_size=5000
    python benchmarks/accuracy.py --dataset DIR --models gru,sasrec --device cuda --epochs 10
    python benchmarks/accuracy.py --dataset DIR --experiments vsknn_diginetica,gru4rec_diginetica
    python benchmarks/accuracy.py --dataset DIR --models auto --set model.budget_minutes=15

``model=auto`` adds an ``auto`` block to its side: the chosen members, weights and parameters, the
validation score, the number of trials, GRU4Rec's epochs and the seconds of each stage.

``--set model.KEY=VALUE`` applies to every listed model whose config has KEY (a KEY none has is an
error), ``--set NAME.KEY=VALUE`` to model NAME only. ``--experiments`` runs presets
(``conf/experiment/<name>.yaml``, composed with the primary config as the CLI would) and reports them
under the preset's name; ``model.KEY`` overrides apply to them too.
Progress goes to stderr line by line (neural models: one line per epoch); the last line of stdout
is one JSON object in the benchmarks' common schema (``benchmarks/_common.py``): ``{"benchmark":
"accuracy", "dataset", "sides": {MODEL: {"wall_s", "cpu_s", "peak_rss_mb", "output_hash", "hr@20",
"mrr@20", "ndcg@20", "train_s", "eval_s", "train_cpu_s", "eval_cpu_s", "transitions_per_s",
"events_per_s", "transitions", "events", "epochs", "device", "targets"}}, "machine"}``.
``transitions_per_s`` counts training transitions as GRU4Rec's official code does (events minus
sessions, times epochs) per second of ``fit``; ``events_per_s`` counts events the same way. The
``*_cpu_s`` fields are this process's CPU time (all threads), which says more than wall time on a
shared machine; ``output_hash`` hashes the full-precision metrics, so two runs that rank alike
show the same hash.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("HYDRA_FULL_ERROR", "0")

# Models that never touch an accelerator: they report device "cpu" whatever --device says.
CPU_ONLY_MODULES = ("recframe.model.pop", "recframe.model.knn.")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="accuracy.py",
        description="Train models on DIR/train.tsv.gz, evaluate on DIR/test.tsv.gz (full ranking, every position).",
        epilog="Last line of output: one JSON object with the results.",
    )
    p.add_argument(
        "--dataset",
        required=True,
        help="folder with train.tsv.gz + test.tsv.gz (SessionId, ItemId, Time), train_full.tsv.gz + test.tsv.gz "
        "(YooChoose) or events.csv.gz (REES46: newest tenth of sessions as test); see benchmarks/session_data.py",
    )
    p.add_argument("--models", default="", help="comma-separated names of conf/model/<name>.yaml, e.g. pop,vsknn")
    p.add_argument(
        "--experiments",
        default="",
        help="comma-separated presets of conf/experiment/<name>.yaml (model + trainer), e.g. vsknn_diginetica",
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="accelerator for neural models")
    p.add_argument("--epochs", type=int, default=None, help="max_epochs for neural models (default: their trainer's)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model.KEY=VALUE for every model with KEY (and every experiment), NAME.KEY=VALUE for one (repeatable)",
    )
    p.add_argument("--test-sessions", type=int, default=None, help="evaluate on the first N test sessions only")
    p.add_argument("--batch-size", type=int, default=512, help="prefixes scored per batch during evaluation")
    p.add_argument("--seed", type=int, default=42, help="seed handed to fit (neural models)")
    return p.parse_args(argv)


def model_keys(name: str) -> set[str]:
    """Top-level keys of ``conf/model/<name>.yaml`` (empty when there is no such file)."""
    from omegaconf import OmegaConf

    path = ROOT / "conf" / "model" / f"{name}.yaml"
    return set(OmegaConf.load(path).keys()) if path.exists() else set()


def model_overrides(name: str, overrides: list[str], names: list[str], experiments: tuple[str, ...] = ()) -> list[str]:
    """The overrides that concern model ``name``, spelled ``model.KEY=VALUE`` for Hydra.

    ``model.KEY=VALUE`` goes to every listed model whose config has KEY (``--set model.k=500`` with
    ``--models pop,vsknn`` leaves pop alone); a KEY that none of them has is an error, so a typo is
    not silently ignored. ``NAME.KEY=VALUE`` goes to model NAME only, and Hydra rejects unknown keys.
    Experiments (named in ``experiments``) get every ``model.KEY`` override; Hydra checks those keys.
    """
    runs = [*names, *experiments]
    out = []
    for o in overrides:
        key, sep, value = o.partition("=")
        if not sep or "." not in key:
            raise SystemExit(f"--set {o!r}: expected model.KEY=VALUE or NAME.KEY=VALUE")
        scope, _, rest = key.partition(".")
        if scope == "model":
            top = rest.split(".")[0].lstrip("+~")
            if not experiments and not any(top in model_keys(n) for n in names):
                raise SystemExit(f"--set {o!r}: none of the models {', '.join(names)} has a key {top!r}")
            if name in experiments or top in model_keys(name):
                out.append(o)
        elif scope == name:
            out.append(f"model.{rest}={value}")
        elif scope not in runs:
            raise SystemExit(f"--set {o!r}: {scope!r} is neither 'model' nor one of {', '.join(runs)}")
    return out


def compose(
    name: str, overrides: list[str], device: str, epochs: int | None, experiment: bool = False
) -> tuple[Any, dict[str, Any]]:
    """The model config (``_target_`` + arguments) and the trainer settings, composed by Hydra.

    A model composes its own group (plus the trainer group) without the rest of the pipeline's
    config; an experiment composes the whole primary config with ``experiment=NAME``, exactly as
    ``python -m recframe experiment=NAME`` would, and contributes its ``model`` and ``trainer``.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from recframe.shipped import CONFIG_MODULE

    trainer_option = "gpu" if device == "cuda" else "cpu"
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        if experiment:
            groups = [f"experiment={name}", f"trainer={trainer_option}"]
            cfg = hydra_compose(config_name="config", overrides=[*groups, *overrides])
        else:
            groups = [f"+model={name}", f"+trainer={trainer_option}"]
            cfg = hydra_compose(overrides=[*groups, *overrides])
    trainer = OmegaConf.to_container(cfg.get("trainer", OmegaConf.create({})), resolve=True)
    trainer = {k: v for k, v in trainer.items() if not k.startswith("_")}
    trainer["accelerator"] = device
    if epochs is not None:
        trainer["max_epochs"] = epochs
    return cfg.model, trainer


def run_model(
    name: str, names: list[str], experiments: tuple[str, ...], args: argparse.Namespace, train, test
) -> dict[str, Any]:
    """Fit and evaluate one model (or preset); its side of the summary."""
    from _common import epoch_progress, measure, output_hash, progress, side, transitions
    from hydra.utils import instantiate

    from recframe.evaluation import evaluate
    from recframe.interfaces import FitContext

    overrides = model_overrides(name, args.overrides, names, experiments)
    model_cfg, trainer = compose(name, overrides, args.device, args.epochs, experiment=name in experiments)
    model = instantiate(model_cfg, _convert_="all")
    target = str(model_cfg.get("_target_", ""))
    cpu_only = target.startswith(CPU_ONLY_MODULES)
    n_transitions = transitions(train)
    if not cpu_only:
        trainer["callbacks"] = [*trainer.get("callbacks", []), epoch_progress(name, n_transitions)]
    ctx = FitContext(trainer=trainer, seed=args.seed, progress=False)
    if hasattr(model, "search_log"):  # model=auto: its trials and stages as progress lines
        show_search_progress()
    progress(f"[{name}] fitting {target} on {len(train):,} events ({n_transitions:,} transitions)")
    with measure() as total:
        t0, c0 = time.perf_counter(), time.process_time()
        model.fit(train, None, ctx)
        train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
        progress(f"[{name}] fit in {train_s:.1f}s; evaluating")
        t0, c0 = time.perf_counter(), time.process_time()
        metrics = evaluate(model, test, batch_size=args.batch_size)
        eval_s, eval_cpu = time.perf_counter() - t0, time.process_time() - c0
    epochs = 1 if cpu_only else int(getattr(model, "epochs_run", None) or trainer.get("max_epochs") or 1)
    result = side(
        total,
        output_hash(metrics),
        **{k: round(metrics[k], 6) for k in ("hr@20", "mrr@20", "ndcg@20")},
        train_s=round(train_s, 3),
        eval_s=round(eval_s, 3),
        train_cpu_s=round(train_cpu, 3),
        eval_cpu_s=round(eval_cpu, 3),
        transitions_per_s=round(n_transitions * epochs / max(train_s, 1e-9), 1),
        events_per_s=round(len(train) * epochs / max(train_s, 1e-9), 1),
        transitions=n_transitions,
        events=len(train),
        epochs=epochs,
        device="cpu" if cpu_only else args.device,
        targets=metrics["targets"],
    )
    search = getattr(model, "search_log", None)
    if search:  # model=auto: what it chose and the seconds each stage took
        result["auto"] = auto_summary(search)
        progress(f"[{name}] chose {result['auto']['members']}: {search['winner']['why']}")
    progress(
        f"[{name}] HR@20 {result['hr@20']:.4f}  MRR@20 {result['mrr@20']:.4f}  NDCG@20 {result['ndcg@20']:.4f}  "
        f"fit {train_s:.1f}s  eval {eval_s:.1f}s  ({metrics['targets']:,} targets)"
    )
    return result


def show_search_progress() -> None:
    """Send recframe's INFO log lines (one per trial and stage of ``model=auto``) to stderr."""
    import logging

    logger = logging.getLogger("recframe")
    if not any(getattr(h, "_auto_progress", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[auto] %(message)s"))
        handler._auto_progress = True
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def auto_summary(search: dict[str, Any]) -> dict[str, Any]:
    """The JSON side's view of a ``model=auto`` search: chosen members, weights, parameters, time per stage."""
    winner, budget = search["winner"], search["budget"]
    return {
        "members": winner["members"],
        "weights": winner["weights"],
        "normalize": winner["normalize"],
        "params": winner["params"],
        "validation_score": winner["score"],
        "metric": search["metric"],
        "trials": len(search["trials"]),
        "gru_epochs": (search.get("gru") or {}).get("epochs"),
        "budget_s": budget["budget_s"],
        "used_s": budget["used_s"],
        "stage_s": {k: v["seconds"] for k, v in budget["stages"].items()},
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from _common import emit, progress, summary
    from session_data import load_dataset

    names = [n.strip() for n in args.models.split(",") if n.strip()]
    experiments = tuple(n.strip() for n in args.experiments.split(",") if n.strip())
    if not names and not experiments:
        raise SystemExit("give at least one model (--models) or preset (--experiments)")
    for group, listed in (("model", names), ("experiment", experiments)):
        known = sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml"))
        for name in listed:  # fail on a bad name or override before loading any data
            if name not in known:
                raise SystemExit(f"unknown {group} {name!r}: no conf/{group}/{name}.yaml (known: {', '.join(known)})")
    for name in [*names, *experiments]:
        model_overrides(name, args.overrides, names, experiments)
    import torch  # noqa: F401 - imported here so its start-up time is not billed to the first model's eval

    train, test = load_dataset(args.dataset)
    if args.test_sessions is not None:
        keep = test["session_id"].drop_duplicates().iloc[: args.test_sessions]
        test = test[test["session_id"].isin(set(keep))]
    progress(f"dataset {args.dataset}: {len(train):,} train events, {len(test):,} test events")
    sides = {name: run_model(name, names, experiments, args, train, test) for name in [*names, *experiments]}
    emit(summary("accuracy", sides, dataset=str(args.dataset), seed=args.seed))
    return 0


def cli() -> int:
    """``main`` with user errors (bad config values, missing files, bad overrides) on one line, exit 2."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from recframe.interfaces import RecframeError

    try:
        return main()
    except (RecframeError, HydraException, OmegaConfBaseException) as e:
        shown: BaseException = e
        cause: BaseException | None = e
        while cause is not None:  # Hydra wraps a constructor's ConfigError; show that one
            if isinstance(cause, RecframeError):
                shown = cause
                break
            cause = cause.__cause__
        message = " ".join(line.strip() for line in str(shown).splitlines() if line.strip())
        print(f"error: {message or type(shown).__name__}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(cli())
