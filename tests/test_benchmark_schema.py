"""The benchmarks' common output schema (``benchmarks/_common.py``): sides, levels, best, hashes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def common():
    spec = importlib.util.spec_from_file_location("benchmarks_common", BENCHMARKS / "_common.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def level(concurrency: int, rps: float, p99: float | None, errors: int = 0) -> dict:
    return {"concurrency": concurrency, "rps": rps, "p50_ms": 1.0, "p99_ms": p99, "errors": errors}


def test_best_level_is_the_fastest_within_the_bound_and_error_free(common) -> None:
    levels = [level(1, 100, 3), level(4, 300, 20), level(16, 500, 24.9, errors=1), level(64, 900, 80)]
    best = common.best_level(levels, p99_ms=25)
    assert (best["concurrency"], best["within_p99"]) == (4, True)


def test_best_level_says_when_no_level_meets_the_bound(common) -> None:
    levels = [level(1, 100, 30), level(4, 300, 60, errors=2), level(16, 200, 90)]
    best = common.best_level(levels, p99_ms=25)
    assert (best["concurrency"], best["within_p99"]) == (16, False)  # error-free first, then fastest
    assert common.best_level([], 25) is None


def test_summary_requires_the_common_fields(common) -> None:
    m = common.Measurement(wall_s=1.23456, cpu_s=2.0, peak_rss_mb=100.0)
    good = common.side(m, common.output_hash([1, 2]), hr=0.5)
    assert list(good)[:4] == ["wall_s", "cpu_s", "peak_rss_mb", "output_hash"] and good["wall_s"] == 1.235
    out = common.summary("x", {"a": good}, dataset="d")
    assert out["benchmark"] == "x" and out["sides"]["a"]["hr"] == 0.5 and out["dataset"] == "d"
    assert {"cpus", "load_avg_1m"} <= set(out["machine"]) and "levels" not in out
    with pytest.raises(ValueError, match="lacks peak_rss_mb"):
        common.summary("x", {"a": {"wall_s": 1, "cpu_s": 1, "output_hash": "h"}})
    with pytest.raises(ValueError, match="both levels and best"):
        common.summary("x", {"a": good}, levels={"a": [level(1, 1, 1)]})
    with pytest.raises(ValueError, match="lacks p50_ms, p99_ms"):
        common.summary("x", {"a": good}, levels={"a": [{"concurrency": 1, "rps": 1, "errors": 0}]}, best={})


def test_output_hash_is_stable_and_sees_order_values_and_columns(common) -> None:
    df = pd.DataFrame({"session": ["a", "b"], "items": ["x y", "z"]})
    h = common.output_hash(df)
    assert h == common.output_hash(df.copy()) and len(h) == 16
    assert h != common.output_hash(df.iloc[::-1])
    assert h != common.output_hash(df.rename(columns={"items": "item"}))
    assert h != common.output_hash(df.assign(items=["x y", "w"]))
    assert common.output_hash({"b": 1, "a": np.float64(0.5)}) == common.output_hash({"a": 0.5, "b": 1})
    arr = np.arange(6, dtype=np.int64)
    assert common.output_hash(arr) != common.output_hash(arr.reshape(2, 3))
    assert common.output_hash(arr) != common.output_hash(arr.astype(np.int32))


def test_transitions_are_events_minus_sessions(common) -> None:
    events = pd.DataFrame({"session_id": ["a", "a", "a", "b", "c", "c"], "item_id": list("xyzxyz")})
    assert common.transitions(events) == 6 - 3


def test_measure_reports_each_blocks_own_peak(common) -> None:
    with common.measure() as big:
        block = np.ones(40_000_000)  # 305 MiB
        block[::4096] = 2.0
        del block
    with common.measure() as small:
        sum(range(1000))
    assert big.wall_s > 0 and big.cpu_s >= 0
    if common.reset_peak_rss():  # Linux: the second block does not inherit the first one's peak
        assert big.peak_rss_mb - small.peak_rss_mb > 200


def test_train_speed_prints_each_epoch_and_counts_transitions(capsys) -> None:
    """benchmarks/train_speed.py on generated data: one stderr line per epoch, transitions beside events."""
    import json

    spec = importlib.util.spec_from_file_location("train_speed_benchmark", BENCHMARKS / "train_speed.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    argv = ["--models", "gru", "--epochs", "2", "--synthetic-sessions", "200", "--threads", "1", "--device", "cpu"]
    argv += ["--set", "model.layers=[8]", "--set", "model.n_sample=16"]
    assert bench.main(argv) == 0
    captured = capsys.readouterr()
    epochs = [line for line in captured.err.splitlines() if line.startswith("[gru] epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["[gru] epoch 1/2", "[gru] epoch 2/2"]
    assert all("transitions/s" in line for line in epochs)
    gru = json.loads(captured.out.strip().splitlines()[-1])["sides"]["gru"]
    train, _ = bench.synthetic(200)
    assert gru["events"] == len(train) and gru["transitions"] == len(train) - train["session_id"].nunique()
    assert gru["epochs"] == 2 and gru["events_per_s"] > gru["transitions_per_s"] > 0


def test_train_speed_times_the_batches_and_reports_a_failing_model(capsys) -> None:
    """--precision, --eval-repeats, the first-to-last-batch span, and a model that fails beside one that works."""
    import json

    spec = importlib.util.spec_from_file_location("train_speed_benchmark", BENCHMARKS / "train_speed.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    argv = ["--models", "gru,nosuchmodel", "--epochs", "2", "--synthetic-sessions", "200", "--threads", "1"]
    argv += ["--device", "cpu", "--precision", "bf16-mixed", "--evaluate", "--eval-repeats", "2"]
    argv += ["--set", "model.layers=[8]", "--set", "model.n_sample=16"]
    assert bench.main(argv) == 1  # one model failed
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(out["sides"]) == ["gru"] and list(out["errors"]) == ["nosuchmodel"]
    gru = out["sides"]["gru"]
    assert gru["precision"] == "bf16-mixed" and gru["epochs"] == 2 and gru["batches"] >= 2
    assert 0 < gru["batches_s"] <= gru["train_s"] and gru["before_first_batch_s"] >= 0
    assert gru["batch_transitions_per_s"] >= gru["transitions_per_s"] > 0
    assert len(gru["eval_s_runs"]) == 2 and gru["eval_s"] == gru["eval_s_runs"][0] and gru["targets"] > 0


def test_train_speed_max_seconds_stops_training_and_counts_the_epochs_trained(capsys) -> None:
    import json

    spec = importlib.util.spec_from_file_location("train_speed_benchmark", BENCHMARKS / "train_speed.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    argv = ["--models", "gru", "--epochs", "10000", "--synthetic-sessions", "200", "--threads", "1"]
    argv += ["--device", "cpu", "--max-seconds", "2", "--set", "model.layers=[8]", "--set", "model.n_sample=16"]
    assert bench.main(argv) == 0
    gru = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["sides"]["gru"]
    assert 0 < gru["epochs"] < 10000 and gru["epochs_asked"] == 10000
    assert 1.5 < gru["batches_s"] < 30


@pytest.mark.slow
def test_gpu_check_records_a_failing_step_and_runs_the_next(tmp_path) -> None:
    """benchmarks/gpu_check.sh rehearsed on CPU: a step that fails is recorded and the next one still runs."""
    import gzip
    import json
    import os
    import subprocess

    data = tmp_path / "data"
    data.mkdir()
    for name, sessions in (("train", range(60)), ("test", range(60, 70))):
        with gzip.open(data / f"{name}.tsv.gz", "wt") as f:
            f.write("SessionId\tItemId\tTime\n")
            f.writelines(f"{s}\t{(s + k) % 13}\t{s * 100 + k}\n" for s in sessions for k in range(4))
    out = tmp_path / "out"
    env = {
        **os.environ,
        "OUT": str(out),
        "PYTHON": sys.executable,
        "GPU_CHECK_DEVICE": "cpu",
        "GPU_CHECK_STEPS": "bf16 speed",
        "GPU_CHECK_EPOCHS": "notanumber",  # the bf16 step fails on its arguments
        "GPU_CHECK_BUDGET_S": "300",
    }
    proc = subprocess.run(
        ["bash", str(BENCHMARKS / "gpu_check.sh"), str(data)],
        cwd=BENCHMARKS.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["bf16.log", "env.txt", "speed.log", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    bf16, speed = summary["steps"]["bf16"], summary["steps"]["speed"]
    assert bf16["exit"] == 2 and "invalid int value" in bf16["error"] and bf16["result"] is None
    assert speed["exit"] == 0 and set(speed["result"]["sides"]) == {"gru", "sasrec"}
    assert speed["result"]["sides"]["gru"]["batch_transitions_per_s"] > 0
    assert summary["headline"]["speed"]["sasrec"]["epochs"] == 1
