"""Evaluation speed: the full metric pass and the whole RecList behavioural suite on a real data set.

DIR is either a recframe dataset folder (``manifest.json`` + parquet, what the ``data`` step writes)
or a session-rec folder with ``train.tsv.gz`` and ``test.tsv.gz`` (``SessionId, ItemId, Time``, as in
``../shared/data/diginetica``).

    python benchmarks/eval_speed.py --dataset ../shared/data/diginetica --model gru-random
    python benchmarks/eval_speed.py --dataset ../shared/data/diginetica --model gru --epochs 1
    python benchmarks/eval_speed.py --dataset DIR --model outputs/runs/X/model      # a saved artifact

``--model`` is ``gru-random`` (recframe's own GRU4Rec, the class named by ``conf/model/gru.yaml``,
with ``--hidden`` units and random weights: scoring costs what a trained one of the same shape costs,
through the same scoring path, and it needs no training), ``pop``, a ``conf/model/NAME.yaml`` option
(fitted on train first, one progress line per epoch; ``--epochs`` caps neural training), or a model
artifact folder.

Measured, on the same scores and the same machine, each a side of the summary:

* ``metrics``: :func:`recframe.tester.metrics.headline`: every test prefix scored once, ranks
  and top-K from the same batch (HR/MRR/NDCG/coverage/popbias @1,5,10,20), plus the pop baseline;
* ``suite``: ``ReclistTester.run``: the above plus slices, perturbations, "less wrong", invariants,
  report.json, the SVG plots and index.html;
* ``reference`` (skip with ``--no-reference``): the strongest alternative in this repository,
  :func:`recframe.evaluation.evaluate`, which counts ``scores >= target`` over every item and returns
  ranks only (no top-K, no baseline).

Each side's ``output_hash`` hashes the HR@20, MRR@20 and target count it computed (rounded to 9
digits): the sides score the same model on the same targets, so the hashes must agree, and the
script fails when they do not. On a shared machine wall time depends on the neighbours: ``cpu_s``
(CPU seconds of this process, all threads) and ``machine.load_avg_1m`` are reported beside it; with 2
threads on 2 idle cores, wall time is about half the CPU time.

The last line of output is one JSON object in the benchmarks' common schema
(``benchmarks/_common.py``): ``{"benchmark": "eval_speed", "sides": {"metrics", "suite",
"reference"}, "targets", "items", "model", ...}``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

from _common import (  # noqa: E402
    emit,
    epoch_progress,
    load_split,
    measure,
    output_hash,
    progress,
    side,
    summary,
    transitions,
)

from recframe.interfaces import Dataset, FitContext, Model  # noqa: E402

os.environ.setdefault("DO_NOT_TRACK", "true")


def load_dataset(directory: str | Path) -> Dataset:
    """A recframe dataset folder, or session-rec ``train.tsv.gz`` + ``test.tsv.gz``."""
    d = Path(directory)
    if (d / "manifest.json").exists():
        return Dataset.load(d)
    train, test = load_split(d)
    stats = {"train_events": len(train), "test_events": len(test), "source": str(d)}
    return Dataset(train=train, valid=train.iloc[:0], test=test, stats=stats)


def random_gru(data: Dataset, hidden: int, seed: int) -> Model:
    """recframe's GRU4Rec (whatever class ``conf/model/gru.yaml`` names) with random weights.

    Only the vocabulary and the network are set, as a fitted model has them: scoring runs the
    model's own ``score_prefixes``, the path evaluation and serving use.
    """
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from recframe.vocab import ItemVocab

    cfg = OmegaConf.load(ROOT / "conf" / "model" / "gru.yaml")
    model = instantiate(cfg, layers=[hidden], _convert_="all")
    model.vocab = ItemVocab.from_events(data.train)
    torch.manual_seed(seed)
    model.net = model.build_net(len(model.vocab)).eval()
    return model


def scored(metrics: dict[str, Any]) -> str:
    """The hash every side computes from its own result: HR@20, MRR@20 and the target count."""
    return output_hash({k: round(float(metrics[k]), 9) for k in ("hr@20", "mrr@20")} | {"targets": metrics["targets"]})


def build_model(name: str, data: Dataset, hidden: int, epochs: int | None, seed: int) -> Model:
    """The model to time, fitted (or loaded) and ready to score."""
    path = Path(name)
    if (path / "checksums.json").exists():
        return Model.load(path)
    if name == "gru-random":
        return random_gru(data, hidden, seed)
    if name == "pop":
        from recframe.model.pop import PopModel

        return PopModel().fit(data.train)
    conf = ROOT / "conf" / "model" / f"{name}.yaml"
    if not conf.exists():
        known = sorted(p.stem for p in (ROOT / "conf" / "model").glob("*.yaml"))
        raise SystemExit(f"unknown model {name!r}: not gru-random, pop, an artifact, or one of {', '.join(known)}")
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.merge(OmegaConf.create({"seed": seed}), {"model": OmegaConf.load(conf)})
    model = instantiate(cfg.model, _convert_="all")
    trainer: dict[str, Any] = {"accelerator": "cpu", "devices": 1}
    trainer["callbacks"] = [epoch_progress(name, transitions(data.train))]
    if epochs is not None:
        trainer["max_epochs"] = epochs
    model.fit(
        data.train, data.valid if len(data.valid) else None, FitContext(trainer=trainer, seed=seed, progress=False)
    )
    return model


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", required=True, help="recframe dataset folder or session-rec train/test.tsv.gz folder")
    p.add_argument("--model", default="gru-random", help="gru-random | pop | conf/model NAME | artifact folder")
    p.add_argument("--hidden", type=int, default=100, help="GRU units of the gru-random model (default 100)")
    p.add_argument("--epochs", type=int, default=None, help="cap on training epochs for conf/model options")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2: the target machine)")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--n-samples", type=int, default=1000, help="prefixes sampled by perturbations and less-wrong")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--no-reference", action="store_true", help="skip timing recframe.evaluation.evaluate")
    p.add_argument("--out", default=None, help="where the suite writes its report (default: a temp folder)")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from recframe.evaluation import evaluate
    from recframe.tester.metrics import headline
    from recframe.tester.reclist_suite import ReclistTester

    with measure() as m:
        data = load_dataset(args.dataset)
    progress(f"loaded {len(data.train):,} train / {len(data.test):,} test events in {m.wall_s:.1f}s")
    with measure() as m:
        model = build_model(args.model, data, args.hidden, args.epochs, args.seed)
    progress(f"model {model.name} ({type(model).__name__}) ready in {m.wall_s:.1f}s ({len(model.vocab):,} items)")

    sides: dict[str, dict[str, Any]] = {}
    with measure() as m:
        h = headline(model, data, (1, 5, 10, 20), args.batch_size)
    sides["metrics"] = side(m, scored(h.metrics), **{"hr@20": round(h.metrics["hr@20"], 6)})
    progress(f"metrics: {m.wall_s:.2f}s  hr@20 {h.metrics['hr@20']:.4f}  (pop {h.baseline['hr@20']:.4f})")

    tester = ReclistTester(gates={}, n_samples=args.n_samples, seed=args.seed, batch_size=args.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        with measure() as m:
            result = tester.run(model, data, out / "report")
    timings = result.report.get("timings", {})
    sides["suite"] = side(m, scored(result.metrics), timings=timings)
    progress(f"suite: {m.wall_s:.2f}s  ({', '.join(f'{k} {v}' for k, v in timings.items())})")

    if not args.no_reference:
        with measure() as m:
            ref = evaluate(model, data.test, batch_size=args.batch_size)
        sides["reference"] = side(m, scored(ref), **{"hr@20": round(ref["hr@20"], 6)})
        progress(f"reference recframe.evaluation.evaluate: {m.wall_s:.2f}s")
    hashes = {name: entry["output_hash"] for name, entry in sides.items()}
    if len(set(hashes.values())) != 1:
        raise SystemExit(f"the sides disagree on HR@20/MRR@20/targets: {hashes}")
    res = summary(
        "eval_speed",
        sides,
        model=args.model,
        model_class=type(model).__name__,
        targets=int(h.metrics["targets"]),
        items=len(model.vocab),
        hr_at_20=round(h.metrics["hr@20"], 6),
        threads=args.threads,
    )
    emit(res)
    return res


if __name__ == "__main__":
    main()
