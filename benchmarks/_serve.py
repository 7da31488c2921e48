"""Run one side of the serving benchmark in its own process: ``python _serve.py SIDE ARTIFACT``.

``recframe`` is recframe's endpoint exactly as ``deployer=local`` runs it (one uvicorn worker, the
micro-batching server of ``recframe.deployer.serving``); ``fastapi`` is the plain app of
``_plain_fastapi`` on the same uvicorn. Both listen on 127.0.0.1 on a free port, which is printed as
one JSON line on stdout once the server answers; the process serves until SIGTERM or SIGINT.
A side in its own process lets the benchmark read its CPU time and peak memory from ``/proc``,
the same way for every side.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
from pathlib import Path


def _stop_on_sigterm() -> None:
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def serve_recframe(args: argparse.Namespace) -> None:
    from recframe.deployer.local import LocalDeployer

    deployer = LocalDeployer(
        max_batch=args.max_batch,
        torch_threads=args.torch_threads,
        workers=args.workers,
        fast_path=not args.no_fast_path,
        log_level="error",
    )
    dep = deployer.deploy(args.artifact, args.run_dir or args.artifact.parent / "serve-recframe")
    print(json.dumps({"port": int(dep.details["port"])}), flush=True)
    deployer.wait()


def serve_fastapi(artifact: Path, torch_threads: int) -> None:
    import uvicorn
    from _plain_fastapi import build_app

    from recframe.deployer.predictor import Predictor
    from recframe.deployer.serving_process import serving_threads

    serving_threads(torch_threads)  # the same math threads as recframe's and MLServer's runtime
    app = build_app(Predictor.from_artifact(artifact))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    config = uvicorn.Config(app, lifespan="off", log_level="error", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        thread.join(0.05)
    if not server.started:
        sys.exit("the FastAPI server stopped during startup")
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        server.should_exit = True
        thread.join(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("side", choices=["recframe", "fastapi"])
    ap.add_argument("artifact", type=Path)
    ap.add_argument("--max-batch", type=int, default=64)
    ap.add_argument("--torch-threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1, help="recframe: uvicorn worker processes")
    ap.add_argument("--no-fast-path", action="store_true", help="recframe: every request through FastAPI routing")
    ap.add_argument("--run-dir", type=Path, default=None, help="recframe: where a multi-worker server logs")
    args = ap.parse_args()
    _stop_on_sigterm()
    try:
        if args.side == "recframe":
            serve_recframe(args)
        else:
            serve_fastapi(args.artifact, args.torch_threads)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
