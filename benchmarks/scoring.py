"""Batch scoring benchmark: sessions ranked and written to a DuckDB ``recommendations`` table per second.

For each model (``gru``: recframe's GRU4Rec, one 100-unit layer, untrained since scoring cost does
not depend on training; ``vsknn``: fitted on the train split), every test session is ranked with the
serving predictor (``exclude_seen``, k = 20) in batches and the rows are written through
:meth:`recframe.warehouse_writer.WarehouseWriter.replace_rows` into a fresh DuckDB file, exactly as
``recframe score`` does. The rate counts ranking and writing together, after the artifact is loaded.

For ``gru`` the bound is what the scoring product allows on this machine: numpy's float32 matrix
product ``[b, hidden] @ [hidden, items]`` measured in the same run at its best block size ``b``,
in sessions per second (multiply-adds per second divided by items x hidden units), right before and
right after the ``gru`` pass (``gru_matmul_bound_before_after``); ``gru_share_of_bound`` is the
measured rate over the higher of the two. Where the CPU has a bf16 matrix unit
(``bf16_matrix_unit``), ``gru`` ranks through a bf16 product and rescores its candidates in float32
(the same rows); ``gru_bf16_product_bound`` is then torch's bf16 product measured the same way after
the pass, and ``gru_share_of_bf16_bound`` the rate over it.

Data: ``--data DIR`` with session-rec ``train.tsv.gz``/``test.tsv.gz`` (Diginetica); without it a
synthetic split of the same shape. The last line of output is one JSON object in the benchmarks'
common schema (``benchmarks/_common.py``): ``sides`` per model, each with ``wall_s``, ``cpu_s`` and
``peak_rss_mb`` of ranking and writing, ``output_hash`` (of the ``session_key, rank, sku`` rows
written) and the figures above.

    python benchmarks/scoring.py --data /path/to/diginetica [--sessions 64000]
    python benchmarks/scoring.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("DO_NOT_TRACK", "true")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, measure, output_hash, side, summary  # noqa: E402


def synthetic_split(n_sessions: int, n_items: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_items + 1) ** 0.8
    p /= p.sum()
    lengths = rng.integers(2, 10, n_sessions)
    sid = np.repeat(np.arange(n_sessions), lengths)
    ev = pd.DataFrame({"session_id": sid.astype(str), "item_id": rng.choice(n_items, len(sid), p=p).astype(str),
                       "ts": np.arange(len(sid), dtype=np.int64)})  # fmt: skip
    cut = int(n_sessions * 0.9)
    return ev[sid < cut], ev[sid >= cut]


def sessions_frame(test: pd.DataFrame) -> pd.DataFrame:
    g = test.groupby("session_id", sort=True)
    out = pd.DataFrame({"end_ms": g["ts"].max(), "items": g["item_id"].agg(list)}).reset_index()
    out = out.rename(columns={"session_id": "session_key"})
    out["user_key"] = None
    return out


def build(model_name: str, train: pd.DataFrame, directory: Path, hidden: int) -> None:
    import torch

    from recframe.interfaces import FitContext
    from recframe.vocab import ItemVocab

    if model_name == "gru":
        from recframe.model.seq.gru import GRU4RecModel

        counts = train["item_id"].value_counts()
        torch.manual_seed(0)
        model = GRU4RecModel(layers=[hidden])
        model.vocab = ItemVocab(counts.index.tolist(), counts.tolist())
        model.net = model.build_net(len(counts)).eval()
    else:
        from recframe.model.knn.vsknn import VSKNN

        model = VSKNN()
        model.fit(train, None, FitContext(progress=False))
    model.name = model_name
    model.save(directory)


def matmul_bound(n_items: int, hidden: int, seconds: float, bf16: bool = False) -> dict:
    """Best sessions/s of the float32 product ``[b, hidden] @ [hidden, n_items]`` over block sizes
    (numpy's), or with ``bf16`` of torch's bfloat16 product, the one ``gru`` ranks through where the
    CPU has a bf16 matrix unit (``recframe/model/seq/nets/bf16_topk.py``)."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((hidden, n_items), dtype=np.float32)
    product = np.matmul
    if bf16:
        import torch

        w = torch.from_numpy(w).bfloat16()

        def product(a, b):
            return torch.mm(a, b)

    best = {"sessions_per_s": 0.0, "block": 0}
    for b in (64, 256, 1024, 4096):
        x = rng.standard_normal((b, hidden), dtype=np.float32)
        if bf16:
            x = torch.from_numpy(x).bfloat16()
        product(x, w)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            product(x, w)
            n += 1
        rate = n * b / (time.perf_counter() - t0)
        if rate > best["sessions_per_s"]:
            best = {"sessions_per_s": rate, "block": b}
    return best


def run_one(model_name: str, train: pd.DataFrame, sessions: pd.DataFrame, tmp: Path, args: argparse.Namespace) -> dict:
    from recframe.artifact import load_model
    from recframe.score import ScoreSettings, recommend
    from recframe.warehouse_writer import RECOMMENDATIONS, RECOMMENDATIONS_DDL, DuckDBWriter

    art = tmp / f"{model_name}-model"
    t0 = time.perf_counter()
    build(model_name, train, art, args.hidden)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = load_model(art)
    load_s = time.perf_counter() - t0
    settings = ScoreSettings(k=args.k, batch_size=args.batch_size)
    with DuckDBWriter(tmp / f"{model_name}.duckdb") as writer, measure() as m:
        t0 = time.perf_counter()
        frame = recommend(model, sessions, settings, "default", model_name, "bench")
        t1 = time.perf_counter()
        rows = writer.replace_rows(RECOMMENDATIONS, RECOMMENDATIONS_DDL, frame, "run_id = ?", ["bench"])
        t2 = time.perf_counter()
    total = t2 - t0
    cols = ("session_key", "rank", "sku")  # plain strings, as the table holds them
    written = pd.DataFrame({c: frame[c].to_numpy() if c == "rank" else frame[c].to_pylist() for c in cols})
    return side(
        m, output_hash(written),
        sessions=len(sessions), rows=rows, n_items=len(model.vocab),
        sessions_per_s=round(len(sessions) / total, 1), rank_s=round(t1 - t0, 3), write_s=round(t2 - t1, 3),
        load_s=round(load_s, 3), build_s=round(fit_s, 3), startup_share=round(load_s / (load_s + total), 3),
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", help="folder with session-rec train.tsv.gz / test.tsv.gz (Diginetica)")
    ap.add_argument("--models", default="gru,vsknn", help="comma-separated: gru, vsknn")
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--hidden", type=int, default=100, help="GRU units")
    ap.add_argument("--max-sessions", type=int, default=0, help="score at most this many test sessions (0: all)")
    ap.add_argument("--sessions", type=int, default=0,
                    help="score this many sessions: every test session, then the latest train sessions "
                         "(0: the test sessions only); a longer run makes start-up a smaller share")  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="a small synthetic split, for a smoke run")
    args = ap.parse_args()
    if args.data:
        from _common import load_split

        train, test = load_split(args.data)
        source = f"session-rec split {args.data}"
    else:
        n, items = (3000, 2000) if args.quick else (200_000, 43_000)
        train, test = synthetic_split(n, items, 0)
        source = f"synthetic ({n} sessions, {items} items)"
    sessions = sessions_frame(test)
    if args.max_sessions:
        sessions = sessions.head(args.max_sessions)
    if args.sessions > len(sessions):  # more sessions than the test split holds: the latest train ones
        latest = sessions_frame(train).sort_values("end_ms", kind="stable").tail(args.sessions - len(sessions))
        sessions = pd.concat([latest, sessions], ignore_index=True)
    sides: dict = {}
    extra: dict = {}
    with tempfile.TemporaryDirectory(prefix="recframe-bench-scoring-") as tmp:
        for name in (n.strip() for n in args.models.split(",")):
            seconds = 0.5 if args.quick else 2.0
            first = matmul_bound(len(train["item_id"].unique()), args.hidden, seconds) if name == "gru" else None
            sides[name] = run_one(name, train, sessions, Path(tmp), args)
            print(json.dumps({"model": name, **sides[name]}), file=sys.stderr)
            if name == "gru":
                # measured right before and right after the pass; the higher one counts, so a shared
                # machine's load moving during the run can only lower the share
                second = matmul_bound(sides[name]["n_items"], args.hidden, seconds)
                bound = max(first, second, key=lambda b: b["sessions_per_s"])
                extra["gru_matmul_bound"] = {k: round(v, 1) for k, v in bound.items()}
                extra["gru_matmul_bound_before_after"] = [round(first["sessions_per_s"], 1),
                                                          round(second["sessions_per_s"], 1)]  # fmt: skip
                extra["gru_share_of_bound"] = round(sides[name]["sessions_per_s"] / bound["sessions_per_s"], 3)
                from recframe.model.seq.nets.bf16_topk import bf16_matmul_fast

                extra["bf16_matrix_unit"] = bf16_matmul_fast()
                if extra["bf16_matrix_unit"]:  # what ranking through the bf16 product could reach
                    bf = matmul_bound(sides[name]["n_items"], args.hidden, seconds, bf16=True)
                    extra["gru_bf16_product_bound"] = {k: round(v, 1) for k, v in bf.items()}
                    extra["gru_share_of_bf16_bound"] = round(sides[name]["sessions_per_s"] / bf["sessions_per_s"], 3)
    emit(summary("scoring", sides, data=source, k=args.k, batch_size=args.batch_size, **extra))


if __name__ == "__main__":
    main()
