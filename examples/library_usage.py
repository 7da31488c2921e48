"""recframe as a library: compose and run a pipeline from Python, then use its parts on their own.

    python examples/library_usage.py                 # the embedded default data path (DuckDB + dbt)
    python examples/library_usage.py --quick         # small session files instead: seconds, not minutes
    python examples/library_usage.py --quick model=vsknn tester.k=10    # any CLI override works too

Four ways in, from the most to the least managed:

1. ``recframe.compose`` + ``recframe.build_pipeline``: exactly what ``python -m recframe`` does, with
   the same config groups and the same validation, but returning objects you can inspect.
2. ``recframe.Pipeline`` built from objects you constructed yourself: no Hydra at all.
3. A model on its own: ``fit`` on a long-format event frame, ``score_next``, ``save``/``load``.
4. A tester on its own: score any fitted model on any split, get metrics and a report.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import recframe
from recframe import Dataset, Model, Pipeline


def make_sessions(n_sessions: int, n_items: int = 60, seed: int = 0, first_id: int = 0) -> pd.DataFrame:
    """Long-format events with a learnable habit (item i is usually followed by item i+1).

    recframe's event frames are one row per event: ``session_id``, ``item_id`` (the SKU), ``ts``.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(first_id, first_id + n_sessions):
        item = int(rng.zipf(1.6) % n_items)
        for t in range(int(rng.integers(2, 9))):
            rows.append((f"s{s}", f"sku{item}", s * 100 + t))
            item = (item + 1) % n_items if rng.random() < 0.7 else int(rng.integers(n_items))
    return pd.DataFrame(rows, columns=["session_id", "item_id", "ts"])


def write_session_files(folder: Path) -> tuple[Path, Path]:
    """The same events as files, in the layout ``datasource=files`` reads (SessionId, ItemId, Time)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = {"session_id": "SessionId", "item_id": "ItemId", "ts": "Time"}
    train, test = folder / "train.tsv", folder / "test.tsv"
    make_sessions(600, seed=1).rename(columns=names).to_csv(train, sep="\t", index=False)
    make_sessions(150, seed=2, first_id=10_000).rename(columns=names).to_csv(test, sep="\t", index=False)
    return train, test


def compose_and_run(out: Path, overrides: list[str]) -> recframe.RunResult:
    """1. The CLI's path, from Python: compose -> build (validates everything) -> run."""
    cfg = recframe.compose(overrides)  # a DictConfig, exactly as `python -m recframe OVERRIDES` composes it
    print("model config:", {k: v for k, v in cfg.model.items()})
    pipeline = recframe.build_pipeline(cfg, run_dir=out / "composed")  # every component built, nothing run yet
    print("steps to run:", pipeline.steps)
    result = pipeline.run()
    print(f"[1] {result.metrics['model']}: mrr@20={result.metrics['mrr@20']:.3f} -> {result.run_dir}")
    # recframe.run(overrides, run_dir=...) does all three in one call.
    return result


def pipeline_from_objects(out: Path, train_file: Path, test_file: Path) -> recframe.RunResult:
    """2. No Hydra: construct the components and hand them to a Pipeline."""
    from recframe.datasource.files import FilesSource
    from recframe.model.knn.sknn import SKNN
    from recframe.tester.metrics import MetricsTester

    pipeline = Pipeline(
        datasource=FilesSource(train=train_file, test=test_file),
        model=SKNN(k=50, sample_size=200),
        tester=MetricsTester(k=20, html=False),
        deployer=None,
        steps=["data", "train", "test"],  # no deploy step
        run_dir=out / "objects",
        progress=False,
    )
    result = pipeline.run()
    files = sorted(p.name for p in (out / "objects").iterdir())
    print(f"[2] sknn from objects: mrr@20={result.metrics['mrr@20']:.3f}; run dir holds {files}")
    return result


def model_on_its_own(out: Path) -> Model:
    """3. A model without a pipeline: fit, score the next item, save and reload the artifact."""
    from recframe.evaluation import evaluate
    from recframe.model.knn.sknn import SKNN

    train, test = make_sessions(600, seed=1), make_sessions(150, seed=2, first_id=10_000)
    model = SKNN(k=50).fit(train)

    session, unknown = model.vocab.encode(["sku3", "sku4", "not-a-sku"])  # SKUs -> indices (unknown dropped)
    scores = model.score_next([session])  # [1, n_items], higher is better
    seen = set(session.tolist())  # the serving layer excludes items already in the session; do the same
    top5 = model.vocab.decode([i for i in np.argsort(-scores[0]) if i not in seen][:5])
    print(f"[3] after sku3, sku4 ({unknown} unknown SKU ignored) recommend: {top5}")

    metrics = evaluate(model, test, ks=(20,))  # full ranking, next item at every position
    print(f"[3] sknn on its own: hr@20={metrics['hr@20']:.3f} mrr@20={metrics['mrr@20']:.3f}")

    model.save(out / "sknn_artifact")  # model.json, vocab.json, weights.pt, checksums.json
    reloaded = Model.load(out / "sknn_artifact")
    assert np.allclose(reloaded.score_next([session]), scores)
    return reloaded


def tester_on_its_own(model: Model, out: Path) -> recframe.TestResult:
    """4. A tester without a pipeline: any fitted model, any split, metrics + report + gate verdict."""
    from recframe.tester.metrics import MetricsTester

    train, test = make_sessions(600, seed=1), make_sessions(150, seed=2, first_id=10_000)
    data = Dataset(train=train, valid=train.iloc[:0], test=test)
    tester = MetricsTester(k=20, gates={"hr@20": ">= 1.1 * baseline_pop"})
    result = tester.run(model, data, out / "report")
    pop = result.metrics["baseline_pop"]["hr@20"]
    print(f"[4] tester: hr@20={result.metrics['hr@20']:.3f} vs pop {pop:.3f}; gates passed={result.passed}")
    print("[4] report files:", sorted(p.name for p in (out / "report").iterdir()))
    return result


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small session files instead of the DuckDB + dbt path")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: a temporary folder)")
    parser.add_argument("overrides", nargs="*", help="config overrides for part 1, as on the command line")
    args = parser.parse_args(argv)

    out = args.out or Path(tempfile.mkdtemp(prefix="recframe-library-"))
    train_file, test_file = write_session_files(out / "files")
    overrides = ["model=sknn", "steps=[data,train,test]", "run.progress=false"]
    if args.quick:
        overrides += ["datasource=files", f"datasource.train={train_file}", f"datasource.test={test_file}"]
    composed = compose_and_run(out, [*overrides, *args.overrides])
    from_objects = pipeline_from_objects(out, train_file, test_file)
    model = model_on_its_own(out)
    tested = tester_on_its_own(model, out)

    summary = {
        "composed_mrr@20": composed.metrics["mrr@20"],
        "objects_mrr@20": from_objects.metrics["mrr@20"],
        "tester_hr@20": tested.metrics["hr@20"],
        "tester_passed": float(tested.passed),
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
