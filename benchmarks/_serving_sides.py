"""The three servers of the serving benchmark, each in its own processes, and how to measure them.

* ``recframe``: ``deployer=local`` (``_serve.py recframe``), recframe's micro-batching endpoint;
* ``fastapi``: the plain FastAPI app of ``_plain_fastapi`` (``_serve.py fastapi``), one uvicorn
  worker scoring one request at a time;
* ``mlserver``: ``deployer=seldon`` (a real ``mlserver start``) with adaptive batching set by
  ``max_batch_size`` / ``max_batch_time`` and ``parallel_workers`` inference processes, over
  recframe's runtime (its wrapped ``request`` form is safe under adaptive batching).

Every server is a process tree whose CPU seconds and peak resident memory are read from ``/proc``
(summed over the tree: MLServer's inference workers are child processes), the same way for each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------ /proc


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants alive now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of the process tree under ``pid`` (live processes only)."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
        except (OSError, IndexError, ValueError):
            continue
    return total / CLK_TCK


def tree_peak_rss_mb(pid: int) -> float | None:
    """Sum of the peak resident memory (``VmHWM``) of the processes under ``pid``, in MiB."""
    kib, seen = 0, False
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status", encoding="ascii", errors="replace") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        kib += int(line.split()[1])
                        seen = True
        except (OSError, ValueError):
            continue
    return round(kib / 1024.0, 1) if seen else None


# ------------------------------------------------------------------------------------ servers


@dataclass
class Server:
    """A running side: where to send requests, how to recognise a good answer, how to stop it."""

    name: str
    port: int
    pid: int
    path: str
    ok: bytes
    config: dict[str, Any] = field(default_factory=dict)
    _stop: Any = None

    def body(self, session: list[str], k: int) -> bytes:
        """The request body for one session, in this side's protocol."""
        query = json.dumps({"session": session, "k": k})
        if self.name != "mlserver":
            return query.encode()
        return json.dumps(
            {"inputs": [{"name": "request", "shape": [1], "datatype": "BYTES", "data": [query]}]}
        ).encode()

    def items(self, payload: bytes) -> list[str]:
        """The ranked SKUs of one answer."""
        answer = json.loads(payload)
        if self.name == "mlserver":
            answer = json.loads(next(o for o in answer["outputs"] if o["name"] == "response")["data"][0])
        return answer["items"]

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None


def start_local(
    side: str,
    artifact: Path,
    run_dir: Path,
    torch_threads: int,
    max_batch: int = 256,
    workers: int = 1,
    fast_path: bool = True,
    timeout_s: float = 120,
) -> Server:
    """``recframe`` or ``fastapi`` via ``_serve.py``; returns once the server has printed its port.
    ``max_batch``, ``workers`` and ``fast_path`` are recframe's ``deployer.*`` settings."""
    cmd = [sys.executable, str(HERE / "_serve.py"), side, str(artifact), "--torch-threads", str(torch_threads)]
    cmd += ["--max-batch", str(max_batch), "--workers", str(workers), "--run-dir", str(run_dir)]
    cmd += [] if fast_path else ["--no-fast-path"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=None, text=True)

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    line = proc.stdout.readline() if sel.select(timeout_s) else ""
    sel.close()
    if not line:
        stop()
        raise RuntimeError(f"the {side} server did not start (exit code {proc.poll()}); see its output above")
    config: dict[str, Any] = {"torch_threads": torch_threads, "uvicorn_workers": 1}
    if side == "recframe":
        config.update(uvicorn_workers=workers, max_batch=max_batch, fast_path=fast_path)
    return Server(side, json.loads(line)["port"], proc.pid, "/invocations", b'"items"', config, stop)


def start_mlserver(
    artifact: Path, run_dir: Path, torch_threads: int, parallel_workers: int, max_batch_size: int, max_batch_time: float
) -> Server:
    """A real ``mlserver start`` over the artifact with the given batching and worker settings."""
    from recframe.deployer.seldon import SeldonDeployer

    class BenchSeldon(SeldonDeployer):
        def write_model_folder(self, artifact_dir: Path, root: Path) -> Path:
            folder = super().write_model_folder(artifact_dir, root)
            path = folder / "model-settings.json"
            settings = json.loads(path.read_text())
            settings.update(
                max_batch_size=max_batch_size,
                max_batch_time=max_batch_time,
            )
            path.write_text(json.dumps(settings, indent=2))
            return folder

    # The runtime module and the worker start-up fix (_mlserver_site) reach every MLServer process
    # through the environment SeldonDeployer passes on; this process's environment is restored after.
    saved = {key: os.environ.get(key) for key in ("PYTHONPATH", "RECFRAME_BENCH_MLSERVER_WORKER_FIX")}
    paths = [str(HERE / "_mlserver_site"), str(HERE), *filter(None, (saved["PYTHONPATH"] or "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    os.environ["RECFRAME_BENCH_MLSERVER_WORKER_FIX"] = "1"
    dep_ = BenchSeldon(torch_threads=torch_threads, parallel_workers=parallel_workers, startup_timeout_s=120)
    try:
        dep = dep_.deploy(artifact, run_dir)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    config = {
        "torch_threads": torch_threads,
        "parallel_workers": parallel_workers,
        "max_batch_size": max_batch_size,
        "max_batch_time_ms": round(max_batch_time * 1000, 3),
    }
    path = f"/v2/models/{dep_.model_name}/infer"
    return Server(
        "mlserver", int(dep.details["http_port"]), int(dep.details["pid"]), path, b'"outputs"', config, dep_.teardown
    )
