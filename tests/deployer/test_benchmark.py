"""``benchmarks/serving.py`` runs end to end: every side serves the same rankings, in the common schema."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "serving.py"
SIDE_FIELDS = {"wall_s", "cpu_s", "peak_rss_mb", "output_hash"}
LEVEL_FIELDS = {"concurrency", "rps", "p50_ms", "p99_ms", "errors", "loadgen_cpu_share"}


def run_benchmark(artifact: Path, *extra: str, timeout: int = 240) -> tuple[subprocess.CompletedProcess, dict]:
    cmd = [sys.executable, str(SCRIPT), "--artifact", str(artifact), "--levels", "4", "--seconds", "1.5"]
    cmd += ["--warmup", "0.3", *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert out.stdout.strip(), out.stderr[-3000:]
    return out, json.loads(out.stdout.strip().splitlines()[-1])


def check_side(summary: dict, name: str) -> None:
    entry = summary["sides"][name]
    assert set(entry) >= SIDE_FIELDS
    assert entry["wall_s"] > 0 and entry["cpu_s"] > 0 and entry["peak_rss_mb"] > 0
    # the side served the probe sessions exactly as the in-process Predictor ranks them
    assert entry["output_hash"] == summary["reference_hash"]
    (level,) = summary["levels"][name]
    assert set(level) >= LEVEL_FIELDS
    assert level["concurrency"] == 4 and level["errors"] == 0 and level["rps"] > 0
    assert 0 < level["p50_ms"] <= level["p99_ms"]
    assert 0 < level["loadgen_cpu_share"] < 1
    best = summary["best"][name]
    assert best["rps"] == level["rps"] and best["within_p99"] == (level["p99_ms"] <= summary["p99_target_ms"])


def test_help() -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--mlserver-configs" in out.stdout


def test_unknown_side_is_one_clear_line() -> None:
    cmd = [sys.executable, str(SCRIPT), "--sides", "tfserving"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "unknown side(s) tfserving" in out.stderr and "Traceback" not in out.stderr


def test_recframe_and_fastapi_serve_the_same_rankings(probe_artifact: Path) -> None:
    out, summary = run_benchmark(probe_artifact, "--sides", "recframe,fastapi")
    assert out.returncode == 0, out.stderr[-3000:]
    assert summary["benchmark"] == "serving" and "ratio" not in summary
    assert set(summary["sides"]) == set(summary["levels"]) == set(summary["best"]) == {"recframe", "fastapi"}
    assert summary["outputs_match"] is True
    for name in ("recframe", "fastapi"):
        check_side(summary, name)
    assert summary["sides"]["recframe"]["max_batch"] == 256
    assert summary["machine"]["cpus"] >= 1


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mlserver") is None, reason="needs mlserver (recframe[seldon])")
def test_mlserver_side_with_adaptive_batching(probe_artifact: Path) -> None:
    configs = "1:1:0,1:16:2"  # batching off, then on: the sweep keeps the better, lists both
    out, summary = run_benchmark(probe_artifact, "--sides", "mlserver", "--mlserver-configs", configs, timeout=400)
    assert out.returncode == 0, out.stderr[-3000:]
    check_side(summary, "mlserver")
    sweep = summary["mlserver_sweep"]
    assert [(c["parallel_workers"], c["max_batch_size"]) for c in sweep] == [(1, 1), (1, 16)]
    winner = max(sweep, key=lambda c: (c["best"]["within_p99"], c["best"]["rps"]))
    assert summary["sides"]["mlserver"]["max_batch_size"] == winner["max_batch_size"]
    assert summary["levels"]["mlserver"] == winner["levels"]


def load_generator_module():
    path = SCRIPT.with_name("_loadgen.py")
    spec = importlib.util.spec_from_file_location("recframe_bench_loadgen", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_load_generator_stops_at_its_request_bound(endpoint) -> None:
    lg = load_generator_module()
    port = int(endpoint.details["port"])
    body = lg.request_bytes("127.0.0.1", port, "/invocations", json.dumps({"session": ["sku1"], "k": 3}).encode())
    gen = lg.LoadGenerator("127.0.0.1", port, [body], b'"items"')
    try:
        res = gen.level({"concurrency": 4, "warmup": 0.0, "seconds": 30.0, "max_requests": 40}, timeout=60)
    finally:
        gen.close()
    assert res["sent"] == 40 and res["errors"] == 0
    assert len(res["latencies"]) == 40 and res["client_wall_s"] < 30  # the request bound ended it, not the clock


def test_load_generator_counts_wrong_answers_as_errors(endpoint) -> None:
    lg = load_generator_module()
    port = int(endpoint.details["port"])
    bad = lg.request_bytes("127.0.0.1", port, "/invocations", b'{"session": "not a list"}')
    gen = lg.LoadGenerator("127.0.0.1", port, [bad], b'"items"')
    try:
        res = gen.level({"concurrency": 2, "warmup": 0.0, "seconds": 30.0, "max_requests": 10}, timeout=60)
    finally:
        gen.close()
    assert res["errors"] == 10 and res["error_kinds"] == {"http 422": 10} and not res["latencies"]


def test_load_generator_drives_loopback_only() -> None:
    lg = load_generator_module()
    gen = lg.LoadGenerator("192.0.2.1", 80, [b""], b"ok")
    try:
        with pytest.raises(RuntimeError, match="only drives loopback"):
            gen.level({"concurrency": 1, "warmup": 0.0, "seconds": 1.0, "max_requests": 1}, timeout=30)
    finally:
        gen.close()
