"""Serving benchmark: one artifact, three servers, one load generator, the same concurrency levels.

Builds a Diginetica-size model (43k items; recframe's GRU4Rec with one 100-unit layer, untrained:
serving cost does not depend on training), saves it as a real artifact and serves it three ways,
one after another, each in its own processes on 127.0.0.1:

* ``recframe``: recframe's endpoint (``deployer=local``, its micro-batching server);
* ``mlserver``: MLServer (``deployer=seldon``) with adaptive batching on. Several
  ``parallel_workers`` / ``max_batch_size`` / ``max_batch_time`` settings are tried
  (``--mlserver-configs``); the one with the best ``best`` level is reported as the side, every
  one of them under ``mlserver_sweep``;
* ``fastapi``: a plain FastAPI app (one uvicorn worker) calling the same Predictor one request at a
  time.

The load generator (``_loadgen.py``) is a separate process of closed-loop keep-alive clients,
bounded in time and requests per level and limited to loopback. At each concurrency level it reports
requests/s, p50 and p99 latency, errors and its own CPU share (``loadgen_cpu_share``: its CPU
seconds over its own plus the server's during the level; the two share the machine's cores).

Sessions are 20 SKUs drawn with a popularity skew; k = 20. Before the load, every side answers a
fixed set of probe sessions, one at a time and then all at once (batched together where the side
batches); ``output_hash`` hashes the ranked SKUs it returned, and all sides must equal the
in-process Predictor's hash (``reference_hash``). A mismatch is printed loudly, recorded
as ``outputs_match: false`` and makes the script exit with status 1 after its JSON line.

The last line is one JSON object in the benchmarks' common schema (``benchmarks/_common.py``):
``sides`` (``wall_s``, ``cpu_s``, ``peak_rss_mb`` of the server's process tree during the load,
``output_hash``, the side's settings), ``levels`` per side, and ``best`` per side: the level with
the highest throughput whose p99 is within ``--p99-target-ms`` and had no errors; where no level
meets the bound, ``within_p99: false`` marks the highest-throughput level, at its own p99.

    python benchmarks/serving.py                         # full run (~6 minutes on 2 cores)
    python benchmarks/serving.py --quick                 # short levels, one MLServer setting
    python benchmarks/serving.py --sides recframe,fastapi --levels 4 --seconds 1
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_level, emit, output_hash, progress, side, summary  # noqa: E402
from _loadgen import LoadGenerator, request_bytes  # noqa: E402
from _serving_sides import Server, start_local, start_mlserver, tree_cpu_s, tree_peak_rss_mb  # noqa: E402

os.environ.setdefault("DO_NOT_TRACK", "true")
SIDES = ("recframe", "mlserver", "fastapi")
PROBES = 16  # sessions whose answers every side's output_hash covers
# parallel_workers 1 or 2 on a 2-core machine; with 0 the model runs on MLServer's event loop, which
# then stops reading requests while it scores (add e.g. 0:32:2 to see it).
DEFAULT_MLSERVER = "1:16:2,1:32:5,1:64:10,2:16:2,2:32:5,2:64:10"


def build_artifact(directory: Path, n_items: int, hidden: int, seed: int) -> str:
    """Write an untrained Diginetica-size GRU4Rec artifact."""
    import torch

    from recframe.model.seq.gru import GRU4RecModel
    from recframe.vocab import ItemVocab

    rng = np.random.default_rng(seed)
    counts = np.sort(rng.zipf(1.3, n_items).clip(max=100_000))[::-1]
    vocab = ItemVocab([f"sku{i}" for i in range(n_items)], counts.tolist())
    torch.manual_seed(seed)
    model = GRU4RecModel(layers=[hidden])
    model.vocab = vocab
    model.net = model.build_net(n_items).eval()
    model.save(directory)
    return f"GRU4RecModel(layers=[{hidden}])"


def make_sessions(n: int, items: list[str], length: int, seed: int) -> list[list[str]]:
    """Sessions of the artifact's SKUs; the first ones (the most popular in a built artifact) are
    requested more often, as in real traffic."""
    rng = np.random.default_rng(seed + 1)
    p = 1.0 / np.arange(1, len(items) + 1) ** 0.8
    p /= p.sum()
    return [[items[i] for i in rng.choice(len(items), size=length, p=p)] for _ in range(n)]


def probe_sessions(sessions: list[list[str]]) -> list[list[str]]:
    """The fixed probe set: load-test sessions plus a cold one and one with unknown SKUs."""
    return [*sessions[: PROBES - 2], ["no-such-sku"], [*sessions[0][:5], "no-such-sku"]]


def reference_hash(artifact: Path, probes: list[list[str]], k: int, torch_threads: int) -> str:
    """The in-process Predictor's answers to the probes (twice, as :func:`probe_hash` asks them):
    what every side must serve."""
    from recframe.deployer.predictor import Predictor
    from recframe.deployer.serving_process import serving_threads

    serving_threads(torch_threads)
    pred = Predictor.from_artifact(artifact)
    answers = [pred.predict(s, k=k)["items"] for s in probes]
    return output_hash([answers, answers])


def _ask(server: Server, session: list[str], k: int) -> list[str]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request("POST", server.path, body=server.body(session, k), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        payload = resp.read()
    finally:
        conn.close()
    if resp.status != 200:
        raise RuntimeError(f"{server.name} answered a probe with {resp.status}: {payload[:200]!r}")
    return server.items(payload)


def probe_hash(server: Server, probes: list[list[str]], k: int) -> str:
    """The hash of the ranked SKUs returned for the probes, asked one at a time and then all at once
    (so a batching server merges them and must route each answer back to its own request)."""
    from concurrent.futures import ThreadPoolExecutor

    one_by_one = [_ask(server, s, k) for s in probes]
    with ThreadPoolExecutor(len(probes)) as pool:
        together = list(pool.map(lambda s: _ask(server, s, k), probes))
    return output_hash([one_by_one, together])


def run_levels(server: Server, sessions: list[list[str]], args: argparse.Namespace) -> tuple[list[dict], dict]:
    """Drive ``server`` at each level from a fresh load-generator process; the levels and the side's
    CPU, memory and wall figures over the whole load."""
    bodies = [request_bytes("127.0.0.1", server.port, server.path, server.body(s, args.k)) for s in sessions]
    gen = LoadGenerator("127.0.0.1", server.port, bodies, server.ok)
    levels: list[dict] = []
    t0, cpu0 = time.perf_counter(), tree_cpu_s(server.pid)
    try:
        for c in args.level_list:
            cfg = {"concurrency": c, "warmup": args.warmup, "seconds": args.seconds, "max_requests": args.max_requests}
            s0 = tree_cpu_s(server.pid)
            res = gen.level(cfg, timeout=args.warmup + args.seconds + 60)
            levels.append(_level(c, res, tree_cpu_s(server.pid) - s0))
            progress(f"  {server.name} {json.dumps(levels[-1])}")
    finally:
        gen.close()
    m = {"wall_s": time.perf_counter() - t0, "cpu_s": tree_cpu_s(server.pid) - cpu0}
    m["peak_rss_mb"] = tree_peak_rss_mb(server.pid)
    return levels, m


def _level(c: int, res: dict[str, Any], server_cpu_s: float) -> dict[str, Any]:
    lat = np.asarray(res["latencies"]) * 1000
    n = len(lat)
    client = res["client_cpu_s"]
    return {
        "concurrency": c,
        "rps": round(n / res["window_s"], 1) if res["window_s"] > 0 else 0.0,
        "p50_ms": round(float(np.percentile(lat, 50)), 2) if n else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 2) if n else None,
        "errors": res["errors"],
        **({"error_kinds": res["error_kinds"]} if res["errors"] else {}),
        "requests": n,
        "server_cpu_s": round(server_cpu_s, 3),
        "loadgen_cpu_s": round(client, 3),
        "loadgen_cpu_share": round(client / (client + server_cpu_s), 3) if client + server_cpu_s > 0 else None,
        "loadgen_cores": round(client / res["client_wall_s"], 3),
    }


def measure_side(
    server: Server, sessions: list[list[str]], probes: list[list[str]], args: argparse.Namespace
) -> tuple[dict, list[dict]]:
    """Probe, then load, one running server; it is stopped afterwards whatever happens."""
    try:
        digest = probe_hash(server, probes, args.k)
        levels, m = run_levels(server, sessions, args)
    finally:
        server.stop()
    errors = sum(lv["errors"] for lv in levels)
    return side(None, digest, **m, errors=errors, **server.config), levels


def mlserver_configs(text: str) -> list[tuple[int, int, float]]:
    """``"W:SIZE:MS,..."`` as (parallel_workers, max_batch_size, max_batch_time in seconds)."""
    out = []
    for part in filter(None, text.split(",")):
        try:
            w, size, ms = part.split(":")
            out.append((int(w), int(size), float(ms) / 1000.0))
        except ValueError:
            raise SystemExit(f"--mlserver-configs: {part!r} is not WORKERS:MAX_BATCH_SIZE:MAX_BATCH_TIME_MS") from None
    return out


def _rank(best: dict[str, Any] | None) -> tuple[bool, float]:
    return (bool(best and best["within_p99"]), best["rps"] if best else 0.0)


def run_mlserver(artifact: Path, tmp: Path, sessions, probes, args) -> tuple[dict, list[dict], list[dict]]:
    """Every MLServer setting at every level; the best setting's side and levels, and the sweep."""
    sweep, chosen = [], None
    for i, (workers, size, seconds) in enumerate(mlserver_configs(args.mlserver_configs)):
        server = start_mlserver(artifact, tmp / f"mlserver-{i}", args.torch_threads, workers, size, seconds)
        progress(f"mlserver {json.dumps(server.config)}")
        entry, levels = measure_side(server, sessions, probes, args)
        best = best_level(levels, args.p99_target_ms)
        sweep.append({**server.config, "best": best, "levels": levels})
        if chosen is None or _rank(best) > _rank(chosen[2]):
            chosen = (entry, levels, best)
    assert chosen is not None, "no MLServer configuration given"
    return chosen[0], chosen[1], sweep


def table(levels: dict[str, list[dict]], best: dict[str, dict | None]) -> str:
    """The levels side by side as text, the best level of each side marked with ``*``."""
    lines = ["side        clients    req/s   p50 ms   p99 ms  errors  loadgen CPU share"]
    for name, rows in levels.items():
        for lv in rows:
            mark = "*" if best.get(name) and best[name]["concurrency"] == lv["concurrency"] else " "
            lines.append(
                f"{name:<10} {mark}{lv['concurrency']:>7} {lv['rps']:>8.0f} {lv['p50_ms'] or 0:>8.2f} "
                f"{lv['p99_ms'] or 0:>8.2f} {lv['errors']:>7} {lv['loadgen_cpu_share'] or 0:>18.2f}"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--artifact", type=Path, help="serve this artifact instead of building one")
    ap.add_argument("--n-items", type=int, default=43_000, help="catalogue size (Diginetica: ~43k)")
    ap.add_argument("--hidden", type=int, default=100, help="GRU width")
    ap.add_argument("--session-len", type=int, default=20)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--sides", default=None, help=f"comma-separated, from {','.join(SIDES)} (default: all; "
                    "mlserver only when installed)")  # fmt: skip
    ap.add_argument("--levels", default="1,4,16,64", help="comma-separated client concurrency levels")
    ap.add_argument("--seconds", type=float, default=5.0, help="measured seconds per level")
    ap.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each level")
    ap.add_argument("--max-requests", type=int, default=200_000, help="request bound per level")
    ap.add_argument("--max-batch", type=int, default=256, help="recframe's micro-batch bound (deployer.max_batch)")
    ap.add_argument("--workers", type=int, default=1, help="recframe's uvicorn worker processes (deployer.workers)")
    ap.add_argument("--no-fast-path", action="store_true", help="recframe: route every request through FastAPI")
    ap.add_argument("--torch-threads", type=int, default=1, help="torch threads per serving process, every side")
    ap.add_argument("--mlserver-configs", default=DEFAULT_MLSERVER,
                    help="MLServer settings, comma-separated WORKERS:MAX_BATCH_SIZE:MAX_BATCH_TIME_MS")  # fmt: skip
    ap.add_argument("--p99-target-ms", type=float, default=25.0)
    ap.add_argument("--quick", action="store_true", help="levels 1,16 of 2 s and one MLServer setting (a smoke run)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.quick:  # shorter defaults; options given explicitly still win
        quick = {"levels": "1,16", "seconds": 2.0, "warmup": 0.5, "mlserver_configs": "1:16:2"}
        for name, value in quick.items():
            if getattr(args, name) == ap.get_default(name):
                setattr(args, name, value)
    if args.sides is None:
        import importlib.util

        args.sides = ",".join(s for s in SIDES if s != "mlserver" or importlib.util.find_spec("mlserver"))
    args.side_list = [s for s in args.sides.split(",") if s]
    unknown = sorted(set(args.side_list) - set(SIDES))
    if unknown or not args.side_list:
        ap.error(f"--sides: unknown side(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(SIDES)}")
    try:
        args.level_list = [int(x) for x in args.levels.split(",")]
    except ValueError:
        ap.error(f"--levels must be comma-separated integers, got {args.levels!r}")
    if not args.level_list or min(args.level_list) < 1:
        ap.error("--levels: each level is a number of clients, at least 1")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="recframe-bench-"))
    try:
        result = run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    emit(result)
    if not result["outputs_match"]:
        sys.exit(1)
    return result


def run(args: argparse.Namespace, tmp: Path) -> dict:
    """Build (or take) the artifact, measure every side, and assemble the summary."""
    artifact, kind = args.artifact, "given artifact"
    if artifact is None:
        artifact = tmp / "model"
        t0 = time.perf_counter()
        kind = build_artifact(artifact, args.n_items, args.hidden, args.seed)
        progress(f"built {kind} with {args.n_items} items in {time.perf_counter() - t0:.1f} s")
    items = [str(x) for x in json.loads((artifact / "vocab.json").read_text())["items"]]
    n_items = len(items)
    sessions = make_sessions(2000, items, args.session_len, args.seed)
    probes = probe_sessions(sessions)
    reference = reference_hash(artifact, probes, args.k, args.torch_threads)
    load_before = round(os.getloadavg()[0], 2)

    sides: dict[str, dict] = {}
    levels: dict[str, list[dict]] = {}
    sweep = None
    for name in args.side_list:
        progress(f"{name}: levels {args.level_list}, {args.seconds:g} s each after {args.warmup:g} s warm-up")
        if name == "mlserver":
            sides[name], levels[name], sweep = run_mlserver(artifact, tmp, sessions, probes, args)
        else:
            settings = {"max_batch": args.max_batch, "workers": args.workers, "fast_path": not args.no_fast_path}
            server = start_local(name, artifact, tmp / f"serve-{name}", args.torch_threads, **settings)
            sides[name], levels[name] = measure_side(server, sessions, probes, args)
    best = {name: best_level(rows, args.p99_target_ms) for name, rows in levels.items()}

    progress(table(levels, best))
    mismatched = sorted(name for name, entry in sides.items() if entry["output_hash"] != reference)
    for name in mismatched:
        progress(f"!!! OUTPUT MISMATCH: {name} served different rankings for the probe sessions "
                 f"(hash {sides[name]['output_hash']}, in-process Predictor {reference}) !!!")  # fmt: skip
    for name, b in best.items():
        if b and not b["within_p99"]:
            progress(f"{name}: no level has p99 <= {args.p99_target_ms:g} ms without errors; "
                     f"best shown is its highest throughput, at its own p99 {b['p99_ms']} ms")  # fmt: skip
    context: dict[str, Any] = {
        "model": kind,
        "n_items": n_items,
        "k": args.k,
        "session_len": args.session_len,
        "seconds_per_level": args.seconds,
        "p99_target_ms": args.p99_target_ms,
        "reference_hash": reference,
        "outputs_match": not mismatched,
        "load_avg_1m_before": load_before,
    }
    if sweep is not None:
        context["mlserver_sweep"] = sweep
    return summary("serving", sides, levels, best, **context)


if __name__ == "__main__":
    main()
