"""Evaluation speed: the full metric pass and the whole RecList behavioural suite on a real data set.

DIR is either a recframe dataset folder (``manifest.json`` + parquet, what the ``data`` step writes)
or a session-rec folder with ``train.tsv.gz`` and ``test.tsv.gz`` (``SessionId, ItemId, Time``, as in
``../shared/data/diginetica``).

    python benchmarks/eval_speed.py --dataset ../shared/data/diginetica --model gru-like
    python benchmarks/eval_speed.py --dataset ../shared/data/diginetica --model gru --epochs 1
    python benchmarks/eval_speed.py --dataset DIR --model outputs/runs/X/model      # a saved artifact

``--model`` is ``gru-like`` (a built-in GRU with random weights: scoring costs what a trained one of
the same width costs, and it needs no training), ``pop``, a ``conf/model/NAME.yaml`` option (fitted on
train first; ``--epochs`` caps neural training), or a model artifact folder.

Measured, on the same scores and the same machine:

* ``metrics_s``: :func:`recframe.tester.metrics.headline`: every test prefix scored once, ranks
  and top-K from the same batch (HR/MRR/NDCG/coverage/popbias @1,5,10,20), plus the pop baseline;
* ``suite_s``: ``ReclistTester.run``: the above plus slices, perturbations, "less wrong", invariants,
  report.json, the SVG plots and index.html;
* ``reference_s`` (skip with ``--no-reference``): the strongest alternative in this repository,
  :func:`recframe.evaluation.evaluate`, which counts ``scores >= target`` over every item and returns
  ranks only (no top-K, no baseline).

On a shared machine wall time depends on the neighbours: ``*_cpu_s`` (CPU seconds of this process,
all threads) and ``load_avg_1m`` are reported beside it; with 2 threads on 2 idle cores, wall time is
about half the CPU time.

The last line of output is one JSON object: ``{"targets", "items", "metrics_s", "suite_s", ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from recframe.interfaces import DataError, Dataset, FitContext, Model  # noqa: E402
from recframe.vocab import ItemVocab  # noqa: E402


def load_dataset(directory: str | Path) -> Dataset:
    """A recframe dataset folder, or session-rec ``train.tsv.gz`` + ``test.tsv.gz``."""
    d = Path(directory)
    if (d / "manifest.json").exists():
        return Dataset.load(d)
    frames = []
    for name in ("train", "test"):
        path = d / f"{name}.tsv.gz"
        if not path.exists():
            raise DataError(f"{d}: neither manifest.json nor {name}.tsv.gz")
        df = pd.read_csv(path, sep="\t", dtype={"SessionId": str, "ItemId": str})
        df = df.rename(columns={"SessionId": "session_id", "ItemId": "item_id", "Time": "ts"})
        df["ts"] = pd.to_numeric(df["ts"]).astype("int64")
        frames.append(df.sort_values(["session_id", "ts"], kind="stable").reset_index(drop=True))
    train, test = frames
    stats = {"train_events": len(train), "test_events": len(test), "source": str(d)}
    return Dataset(train=train, valid=train.iloc[:0], test=test, stats=stats)


class GruLikeModel(Model):
    """An untrained GRU next-item model of a given width: embedding -> GRU -> dot with item vectors.

    It exists so that the benchmark measures what evaluating a GRU4Rec-sized network costs without an
    hour of training first. Like recframe's sequence models it scores every prefix of a batch of
    sessions in one forward pass (``score_prefixes``), which is what full evaluation uses.
    """

    name = "gru-like"

    def __init__(self, hidden: int = 100, seed: int = 0) -> None:
        self.hidden, self.seed = hidden, seed

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None, ctx: FitContext | None = None):
        import torch

        torch.manual_seed(self.seed)
        self.vocab = ItemVocab.from_events(train)
        n = len(self.vocab)
        self.emb = torch.nn.Embedding(n + 1, self.hidden, padding_idx=n)
        self.gru = torch.nn.GRU(self.hidden, self.hidden, batch_first=True)
        self.out = torch.randn(n, self.hidden) / self.hidden**0.5
        self.emb.eval()
        self.gru.eval()
        return self

    def _states(self, sessions: Sequence[np.ndarray]) -> list:
        """GRU states at every position of every session (``[len, hidden]`` each), in input order.

        Sessions are run in groups of similar length, so padding costs little: Diginetica lengths run
        from 2 to 69, and padding every batch to its longest session would multiply the GRU's work.
        """
        import torch

        n = len(self.vocab)
        lengths = np.fromiter((max(1, len(s)) for s in sessions), dtype=np.int64, count=len(sessions))
        order = np.argsort(lengths, kind="stable")
        out: list = [None] * len(sessions)
        start = 0
        while start < len(order):
            stop, events = start, 0
            while stop < len(order) and (events + lengths[order[stop]] <= 16384 or stop == start):
                events += lengths[order[stop]]
                stop += 1
            group = order[start:stop]
            width = int(lengths[group].max())
            batch = torch.full((len(group), width), n, dtype=torch.long)
            for row, i in enumerate(group):
                if len(sessions[i]):
                    batch[row, : len(sessions[i])] = torch.as_tensor(sessions[i], dtype=torch.long)
            with torch.inference_mode():
                states, _ = self.gru(self.emb(batch))
            for row, i in enumerate(group):
                out[i] = states[row, : lengths[i]]
            start = stop
        return out

    def score_next(self, sessions: Sequence[np.ndarray]) -> np.ndarray:
        import torch

        states = self._states(sessions)
        with torch.inference_mode():
            last = torch.stack([st[-1] for st in states])
            return (last @ self.out.T).numpy()

    def score_prefixes(self, sessions: Sequence[np.ndarray], batch_size: int = 512) -> Iterator:
        import torch

        for g in range(0, len(sessions), 20000):  # bounded memory: states of 20k sessions at a time
            group = sessions[g : g + 20000]
            states = self._states(group)
            hs = torch.cat([st[: len(s) - 1] for st, s in zip(states, group, strict=True) if len(s) > 1])
            targets = np.concatenate([s[1:] for s in group if len(s) > 1])
            for a in range(0, len(hs), batch_size):
                with torch.inference_mode():
                    yield hs[a : a + batch_size] @ self.out.T, targets[a : a + batch_size]

    def item_embeddings(self) -> np.ndarray:
        return self.out.numpy()

    def get_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {"hidden": self.hidden}, {"out": self.out}

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, Any], vocab: ItemVocab) -> GruLikeModel:
        raise NotImplementedError("the benchmark's GRU-like model is not saved")


def build_model(name: str, data: Dataset, hidden: int, epochs: int | None, seed: int) -> Model:
    """The model to time, fitted (or loaded) and ready to score."""
    path = Path(name)
    if (path / "checksums.json").exists():
        return Model.load(path)
    if name == "gru-like":
        return GruLikeModel(hidden=hidden, seed=seed).fit(data.train)
    if name == "pop":
        from recframe.model.pop import PopModel

        return PopModel().fit(data.train)
    conf = ROOT / "conf" / "model" / f"{name}.yaml"
    if not conf.exists():
        known = sorted(p.stem for p in (ROOT / "conf" / "model").glob("*.yaml"))
        raise SystemExit(f"unknown model {name!r}: not gru-like, pop, an artifact, or one of {', '.join(known)}")
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.merge(OmegaConf.create({"seed": seed}), {"model": OmegaConf.load(conf)})
    model = instantiate(cfg.model, _convert_="all")
    trainer: dict[str, Any] = {"accelerator": "cpu", "devices": 1}
    if epochs is not None:
        trainer["max_epochs"] = epochs
    model.fit(
        data.train, data.valid if len(data.valid) else None, FitContext(trainer=trainer, seed=seed, progress=False)
    )
    return model


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", required=True, help="recframe dataset folder or session-rec train/test.tsv.gz folder")
    p.add_argument("--model", default="gru-like", help="gru-like | pop | conf/model NAME | artifact folder")
    p.add_argument("--hidden", type=int, default=100, help="width of the gru-like model (default 100)")
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

    t0 = time.perf_counter()
    data = load_dataset(args.dataset)
    load_s = time.perf_counter() - t0
    print(f"loaded {len(data.train):,} train / {len(data.test):,} test events in {load_s:.1f}s", flush=True)
    t0 = time.perf_counter()
    model = build_model(args.model, data, args.hidden, args.epochs, args.seed)
    print(f"model {model.name} ready in {time.perf_counter() - t0:.1f}s ({len(model.vocab):,} items)", flush=True)

    t0, c0 = time.perf_counter(), time.process_time()
    h = headline(model, data, (1, 5, 10, 20), args.batch_size)
    metrics_s, metrics_cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"metrics: {metrics_s:.2f}s  hr@20 {h.metrics['hr@20']:.4f}  (pop {h.baseline['hr@20']:.4f})", flush=True)

    tester = ReclistTester(gates={}, n_samples=args.n_samples, seed=args.seed, batch_size=args.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        t0, c0 = time.perf_counter(), time.process_time()
        result = tester.run(model, data, out / "report")
        suite_s, suite_cpu = time.perf_counter() - t0, time.process_time() - c0
    timings = result.report.get("timings", {})
    print(f"suite: {suite_s:.2f}s  ({', '.join(f'{k} {v}' for k, v in timings.items())})", flush=True)

    res: dict[str, Any] = {
        "targets": int(h.metrics["targets"]),
        "items": len(model.vocab),
        "metrics_s": round(metrics_s, 3),
        "suite_s": round(suite_s, 3),
    }
    if not args.no_reference:
        t0, c0 = time.perf_counter(), time.process_time()
        ref = evaluate(model, data.test, batch_size=args.batch_size)
        res["reference_s"] = round(time.perf_counter() - t0, 3)
        res["reference_cpu_s"] = round(time.process_time() - c0, 3)
        assert abs(ref["hr@20"] - h.metrics["hr@20"]) < 1e-9, "fast pass disagrees with recframe.evaluation"
        print(f"reference recframe.evaluation.evaluate: {res['reference_s']:.2f}s (same hr@20)", flush=True)
    res.update(
        {
            "model": args.model,
            "hr@20": round(h.metrics["hr@20"], 6),
            "metrics_cpu_s": round(metrics_cpu, 3),
            "suite_cpu_s": round(suite_cpu, 3),
            "threads": args.threads,
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }
    )
    print(json.dumps(res), flush=True)
    return res


if __name__ == "__main__":
    main()
