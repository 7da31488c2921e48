"""Blend an already trained GRU4Rec with STAN and evaluate (full ranking, every position).

Training GRU4Rec with the published Diginetica parameters takes about an hour per 10 epochs on one
CPU core, so this script reuses a model trained elsewhere: a recframe artifact folder (``model.save``)
or a Lightning checkpoint written by ``benchmarks/train_speed.py --work-dir W`` (``W/gru/checkpoints/
last.ckpt``, built with ``--experiment``'s parameters). STAN is fitted here (seconds), both are
wrapped in :class:`recframe.model.hybrid.WeightedHybrid` and evaluated, members alone too.

    python benchmarks/hybrid_eval.py --dataset ../shared/data/diginetica \\
        --gru /tmp/w/gru/checkpoints/last.ckpt --experiment gru4rec_diginetica --normalize minmax

Progress goes to stderr; the last line of stdout is one JSON object in the benchmarks' common schema
(``benchmarks/_common.py``): ``{"benchmark": "hybrid_eval", "dataset", "sides": {MODEL: {"wall_s",
"cpu_s", "peak_rss_mb", "output_hash", "hr@20", "mrr@20", "ndcg@20", "targets"}}}``, where a side's
times are its evaluation's and ``output_hash`` hashes its full-precision metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]
os.environ.setdefault("DO_NOT_TRACK", "true")


def load_gru(path: Path, experiment: str | None, train):
    """A GRU4RecModel from an artifact folder, or from a Lightning checkpoint plus the preset's parameters."""
    import torch

    from recframe.interfaces import Model
    from recframe.vocab import ItemVocab

    if path.is_dir():
        return Model.load(path)
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    overrides = ["model=gru"] + ([f"experiment={experiment}"] if experiment else [])
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    gru = instantiate(cfg.model, _convert_="all")
    gru.vocab = ItemVocab.from_events(train)  # the same events give the same vocabulary as in training
    gru.net = gru.build_net(len(gru.vocab))
    state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]  # our own checkpoint
    gru.net.load_state_dict({k[len("net.") :]: v for k, v in state.items() if k.startswith("net.")})
    gru.net.eval()
    return gru


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True, help="folder with train.tsv.gz and test.tsv.gz")
    p.add_argument(
        "--gru",
        required=True,
        help="artifact folder or Lightning .ckpt of a trained GRU4Rec; several, comma-separated, make a seed "
        "ensemble (members gru, gru2, ...)",
    )
    p.add_argument("--experiment", default="gru4rec_diginetica", help="preset the checkpoint was trained with")
    p.add_argument(
        "--weights",
        default=None,
        help="stan,gru[,gru2...] weights (default: 0.5 for stan, 0.5 shared equally by the GRU4Rec members)",
    )
    p.add_argument("--normalize", default="minmax", help="one scaling for both, or stan,gru (e.g. max,softmax)")
    p.add_argument("--members", action="store_true", help="also evaluate each member alone")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    import torch
    from _common import emit, load_split, measure, output_hash, progress, side, summary

    from recframe.evaluation import evaluate
    from recframe.model.hybrid import WeightedHybrid
    from recframe.model.knn.stan import STAN

    torch.set_num_threads(args.threads)
    # the arguments are checked before the data and checkpoints load and STAN fits (minutes)
    paths = [Path(x) for x in args.gru.split(",") if x]
    gru_names = ["gru" if i == 0 else f"gru{i + 1}" for i in range(len(paths))]
    names = ["stan", *gru_names]
    if args.weights:
        values = [float(x) for x in args.weights.split(",")]
        if len(values) != len(names):
            p.error(f"--weights needs {len(names)} values (stan, then one per --gru path)")
    else:
        values = [0.5] + [0.5 / len(paths)] * len(paths)
    norms = args.normalize.split(",")
    norms = norms * len(names) if len(norms) == 1 else norms
    if len(norms) != len(names):
        p.error(f"--normalize needs 1 or {len(names)} values")
    train, test = load_split(args.dataset)
    grus = {name: load_gru(path, args.experiment, train) for name, path in zip(gru_names, paths, strict=True)}
    # session-rec's STAN defaults, as experiment=hybrid_diginetica pins them (not the data-scaled auto values)
    stan = STAN(k=500, sample_size=5000, ts_per_day=86_400_000.0).fit(train)
    members = {"stan": stan, **grus}
    hybrid = WeightedHybrid(members, dict(zip(names, values, strict=True)), dict(zip(names, norms, strict=True)))
    hybrid.vocab = grus["gru"].vocab
    models = (list(members.items()) if args.members else []) + [("hybrid", hybrid)]
    sides = {}
    for name, model in models:
        with measure() as m:
            met = evaluate(model, test)
        extra = {"weights": hybrid.weights, "normalize": hybrid.normalize} if name == "hybrid" else {}
        sides[name] = side(
            m, output_hash(met), **{k: round(met[k], 4) for k in ("hr@20", "mrr@20", "ndcg@20")}, **extra
        )
        sides[name]["targets"] = met["targets"]
        progress(json.dumps({"model": name, **sides[name]}))
    emit(summary("hybrid_eval", sides, dataset=str(args.dataset)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
