"""Serving benchmark: the local endpoint under load versus in-process ``predict`` calls.

Builds a Diginetica-size model (43k items; recframe's GRU4Rec with one 100-unit layer when it is
importable, else the probe GRU of ``recframe.deployer.probe_model``), saves it as a real artifact,
serves it with ``deployer=local`` on 127.0.0.1 and drives it from a separate load-generator process
(keep-alive HTTP/1.1 over raw asyncio sockets, so the client costs little of the shared CPU) at
rising concurrency: sessions of 20 known SKUs, k = 20.

It also measures in-process ``Predictor.predict`` calls per second (one session per call, the way a
notebook would use the model).

The last line of output is one JSON object in the benchmarks' common schema
(``benchmarks/_common.py``): ``sides`` (``recframe``, ``inprocess`` and, when compared, ``mlserver``,
each with ``wall_s``, ``cpu_s``, ``peak_rss_mb`` and ``output_hash``, the hash of the top-k items it
returns for a fixed set of probe sessions, equal across sides that answer alike), ``levels`` per
served side and ``best`` per served side: the level with the highest throughput whose p99 meets
``--p99-target-ms`` and that had no errors (``within_p99: false`` when none meets it).

    python benchmarks/serving.py                 # full run (~1 minute)
    python benchmarks/serving.py --quick         # a few seconds, for CI smoke
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Measurement, best_level, emit, measure, output_hash, peak_rss_mb, side, summary  # noqa: E402

os.environ.setdefault("DO_NOT_TRACK", "true")
PROBES = 16  # sessions whose answers every side's output_hash covers


def build_artifact(directory: Path, n_items: int, hidden: int, seed: int) -> str:
    """Write an untrained Diginetica-size model (serving cost does not depend on training)."""
    import torch

    from recframe.vocab import ItemVocab

    rng = np.random.default_rng(seed)
    counts = np.sort(rng.zipf(1.3, n_items).clip(max=100_000))[::-1]
    vocab = ItemVocab([f"sku{i}" for i in range(n_items)], counts.tolist())
    torch.manual_seed(seed)
    try:
        from recframe.model.seq.gru import GRU4RecModel

        model = GRU4RecModel(layers=[hidden])
        model.vocab = vocab
        model.net = model.build_net(n_items).eval()
        kind = f"GRU4RecModel(layers=[{hidden}], constrained_embedding=True)"
    except ImportError:
        from recframe.deployer.probe_model import ProbeGRUModel

        model = ProbeGRUModel.with_vocab(vocab, dim=hidden, seed=seed)
        kind = f"ProbeGRUModel(dim={hidden})"
    model.save(directory)
    return kind


def make_sessions(n: int, n_items: int, length: int, seed: int) -> list[list[str]]:
    rng = np.random.default_rng(seed + 1)
    # Popular items are requested more often, as in real traffic.
    p = 1.0 / np.arange(1, n_items + 1) ** 0.8
    p /= p.sum()
    return [[f"sku{i}" for i in rng.choice(n_items, size=length, p=p)] for _ in range(n)]


def inprocess_rate(artifact: str, sessions: list[list[str]], k: int, seconds: float) -> dict:
    """Sequential single-session ``predict`` calls per second, in this process: the ``inprocess`` side."""
    from recframe.deployer.predictor import Predictor

    pred = Predictor.from_artifact(artifact)
    answers = [pred.predict(s, k=k)["items"] for s in sessions[:PROBES]]
    for s in sessions[:50]:
        pred.predict(s, k=k)
    n, t0 = 0, time.perf_counter()
    with measure() as m:
        while time.perf_counter() - t0 < seconds:
            pred.predict(sessions[n % len(sessions)], k=k)
            n += 1
    return side(m, output_hash(answers), calls_per_s=round(n / m.wall_s, 1), calls=n)


def probe_answers(host: str, port: int, sessions: list[list[str]], k: int, v2_model: str | None = None) -> str:
    """Hash of the top-k items a served side returns for the probe sessions (one request each)."""
    import http.client

    answers = []
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        for s in sessions[:PROBES]:
            raw = request_bytes(host, port, s, k, v2_model)
            head, body = raw.split(b"\r\n\r\n", 1)
            path = head.split(b" ")[1].decode()
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            payload = json.loads(conn.getresponse().read())
            if v2_model is None:
                answers.append(payload["items"])
            else:
                answers.append(next(o["data"] for o in payload["outputs"] if o["name"] == "items"))
    finally:
        conn.close()
    return output_hash(answers)


# ---------------------------------------------------------------------------- load generator


async def _connection(
    host: str, port: int, bodies: list[bytes], stop_at: float, start_at: float, out: dict, ok: bytes
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = hash(id(out)) % len(bodies)
    lat, errors = out["lat"], 0
    try:
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                break
            body = bodies[i % len(bodies)]
            i += 7
            writer.write(body)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            payload = await reader.readexactly(length)
            done = time.perf_counter()
            if now >= start_at:  # requests begun during warm-up are not counted
                if status != 200 or ok not in payload:
                    errors += 1
                lat.append(done - now)
    except (OSError, asyncio.IncompleteReadError, ValueError):
        errors += 1
    finally:
        out["errors"] += errors
        writer.close()


async def _drive(
    host: str, port: int, bodies: list[bytes], concurrency: int, warmup: float, seconds: float, ok: bytes
) -> dict:
    out = {"lat": [], "errors": 0}
    t0 = time.perf_counter()
    start_at, stop_at = t0 + warmup, t0 + warmup + seconds
    await asyncio.gather(*(_connection(host, port, bodies, stop_at, start_at, out, ok) for _ in range(concurrency)))
    lat = np.asarray(out["lat"]) * 1000
    return {
        "concurrency": concurrency,
        "rps": round(len(lat) / seconds, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 2) if len(lat) else None,
        "errors": out["errors"],
        "requests": len(lat),
    }


def load_generator(
    host: str, port: int, bodies: list[bytes], levels: list[int], warmup: float, seconds: float, q, ok: bytes
) -> None:
    """Runs in its own process: one closed-loop client per connection, each level in turn. A response
    counts as an error unless it is a 200 whose first bytes contain ``ok``."""
    try:
        import uvloop  # the client should cost as little CPU as possible

        uvloop.install()
    except ImportError:
        pass
    for c in levels:
        cpu0 = time.process_time()
        res = asyncio.run(_drive(host, port, bodies, c, warmup, seconds, ok))
        res["client_cpu_ms_per_req"] = round((time.process_time() - cpu0) * 1000 / max(1, res["requests"]), 3)
        q.put(res)
    q.put(None)


def request_bytes(host: str, port: int, session: list[str], k: int, v2_model: str | None = None) -> bytes:
    """One raw HTTP/1.1 request: the recframe contract, or MLServer's native V2 form of the same query."""
    path = "/invocations" if v2_model is None else f"/v2/models/{v2_model}/infer"
    if v2_model is None:
        body = json.dumps({"session": session, "k": k}).encode()
    else:
        inputs = [
            {"name": "session", "shape": [len(session)], "datatype": "BYTES", "data": session},
            {"name": "k", "shape": [1], "datatype": "INT64", "data": [k]},
        ]
        body = json.dumps({"inputs": inputs}).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


def compare_mlserver(artifact: str, tmp: Path, sessions: list[list[str]], args, concurrency: int) -> tuple[dict, dict]:
    """The strongest off-the-shelf alternative in the same run: the same artifact behind MLServer
    (our runtime over the same Predictor, native V2 requests), same load generator and concurrency.
    Returns the ``mlserver`` side (MLServer runs in its own processes: no CPU or memory figures
    from here) and its level."""
    from recframe.deployer.seldon import SeldonDeployer

    seldon = SeldonDeployer(torch_threads=args.torch_threads, parallel_workers=0, smoke_k=args.k)
    dep = seldon.deploy(Path(artifact), tmp / "seldon-run")
    try:
        port = int(dep.details["http_port"])
        digest = probe_answers("127.0.0.1", port, sessions, args.k, v2_model=seldon.model_name)
        bodies = [request_bytes("127.0.0.1", port, s, args.k, v2_model=seldon.model_name) for s in sessions]
        q = mp.get_context("spawn").Queue()
        gen_args = ("127.0.0.1", port, bodies, [concurrency], args.warmup, args.seconds, q, b'"outputs"')
        proc = mp.get_context("spawn").Process(target=load_generator, args=gen_args)
        t0 = time.perf_counter()
        proc.start()
        res = q.get()
        q.get()
        proc.join()
        wall = time.perf_counter() - t0
    finally:
        seldon.teardown()
    print(json.dumps({"mlserver": res}), file=sys.stderr)
    return side(None, digest, wall_s=wall, cpu_s=None, peak_rss_mb=None), res


def _capacity(level: dict) -> float | None:
    per_req = (level.get("server_cpu_ms_per_req") or 0) + (level.get("client_cpu_ms_per_req") or 0)
    return round((os.cpu_count() or 1) * 1000 / per_req, 1) if per_req else None


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--artifact", help="serve this artifact instead of building one")
    ap.add_argument("--n-items", type=int, default=43_000, help="catalogue size (Diginetica: ~43k)")
    ap.add_argument("--hidden", type=int, default=100, help="GRU width")
    ap.add_argument("--session-len", type=int, default=20)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--levels", default="1,4,8,16,32,64", help="comma-separated client concurrency levels")
    ap.add_argument("--seconds", type=float, default=6.0, help="measured seconds per level")
    ap.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each level")
    ap.add_argument("--inprocess-seconds", type=float, default=5.0)
    ap.add_argument("--max-batch", type=int, default=64, help="micro-batch size of the server")
    ap.add_argument("--torch-threads", type=int, default=1, help="torch threads in the server")
    ap.add_argument("--workers", type=int, default=1, help="uvicorn workers (1 = server thread)")
    ap.add_argument("--no-fast-path", action="store_true", help="route every request through FastAPI (for comparison)")
    ap.add_argument(
        "--compare-mlserver",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also drive MLServer (deployer=seldon, V2 protocol) at the best level's concurrency "
        "(default: when mlserver is installed)",
    )
    ap.add_argument("--p99-target-ms", type=float, default=25.0)
    ap.add_argument("--quick", action="store_true", help="small levels and short runs (a smoke run)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.compare_mlserver is None:
        import importlib.util

        args.compare_mlserver = importlib.util.find_spec("mlserver") is not None
    if args.quick:  # shorter defaults; options given explicitly still win
        quick = {"levels": "4,16", "seconds": 2.0, "warmup": 0.5, "inprocess_seconds": 1.5}
        for name, value in quick.items():
            if getattr(args, name) == ap.get_default(name):
                setattr(args, name, value)

    import torch

    from recframe.deployer.local import LocalDeployer

    tmp = Path(tempfile.mkdtemp(prefix="recframe-bench-"))
    artifact = args.artifact
    kind = "given artifact"
    if artifact is None:
        artifact = str(tmp / "model")
        t0 = time.perf_counter()
        kind = build_artifact(Path(artifact), args.n_items, args.hidden, args.seed)
        print(f"built {kind} with {args.n_items} items in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    n_items = len(json.loads((Path(artifact) / "vocab.json").read_text())["items"])
    sessions = make_sessions(2000, n_items, args.session_len, args.seed)

    torch.set_num_threads(args.torch_threads)
    sides = {"inprocess": inprocess_rate(artifact, sessions, args.k, args.inprocess_seconds)}
    inproc = sides["inprocess"]["calls_per_s"]
    print(f"in-process predict: {inproc:.0f} calls/s (torch threads {args.torch_threads})", file=sys.stderr)

    deployer = LocalDeployer(
        max_batch=args.max_batch,
        torch_threads=args.torch_threads,
        workers=args.workers,
        log_level="error",
        fast_path=not args.no_fast_path,
    )
    dep = deployer.deploy(Path(artifact), tmp / "run")
    served = Measurement()
    try:
        host, port = "127.0.0.1", int(dep.details["port"])
        digest = probe_answers(host, port, sessions, args.k)
        bodies = [request_bytes(host, port, s, args.k) for s in sessions]
        levels = [int(x) for x in args.levels.split(",")]
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        gen_args = (host, port, bodies, levels, args.warmup, args.seconds, q, b'"items"')
        proc = ctx.Process(target=load_generator, args=gen_args)
        results = []
        with measure() as served:
            proc.start()
            cpu0 = time.process_time()  # the server runs in this process (workers=1): its CPU per request
            while (res := q.get()) is not None:
                cpu1 = time.process_time()
                if args.workers == 1:
                    # includes the unmeasured warm-up requests: an upper bound
                    res["server_cpu_ms_per_req"] = round((cpu1 - cpu0) * 1000 / max(1, res["requests"]), 3)
                cpu0 = cpu1
                batcher = deployer._app.batcher if deployer._app is not None else None
                if batcher is not None:
                    res["mean_batch"] = round(batcher.sessions / max(1, batcher.batches), 1)
                    batcher.sessions = batcher.batches = 0
                print(json.dumps(res), file=sys.stderr)
                results.append(res)
            proc.join()
        alive = deployer._app is None or deployer._app.ready
    finally:
        deployer.teardown()
    best = best_level(results, args.p99_target_ms)
    sides["recframe"] = side(
        served if args.workers == 1 else None,
        digest,
        **({} if args.workers == 1 else {"wall_s": served.wall_s, "cpu_s": None, "peak_rss_mb": peak_rss_mb()}),
        errors=sum(r["errors"] for r in results),
        server_alive=alive,
        # CPU spent per request (server + load generator) at the best level, and the throughput those
        # costs allow on this machine's cores if nothing else ran: a contention-free yardstick.
        cpu_bound_rps_estimate=_capacity(best),
    )
    all_levels, bests = {"recframe": results}, {"recframe": best}
    if args.compare_mlserver:
        sides["mlserver"], level = compare_mlserver(artifact, tmp, sessions, args, best["concurrency"])
        all_levels["mlserver"] = [level]
        bests["mlserver"] = best_level([level], args.p99_target_ms)
    result = summary(
        "serving",
        sides,
        all_levels,
        bests,
        model=kind,
        fast_path=not args.no_fast_path,
        n_items=n_items,
        k=args.k,
        p99_target_ms=args.p99_target_ms,
    )
    emit(result)
    return result


if __name__ == "__main__":
    main()
