"""The serving benchmark's load generator: closed-loop HTTP/1.1 clients on raw asyncio sockets.

It runs in its own process (:class:`LoadGenerator`, so its CPU is its own and measurable) and runs one
level at a time on request from the benchmark over a pipe: ``c`` keep-alive connections, each sending its next request
as soon as the previous answer is read. Raw sockets and uvloop keep the client's CPU per request
small, since it shares the machine's cores with the server it drives.

It is bounded three ways: it only connects to a loopback address, a level stops at its time limit
and at ``max_requests`` requests, whichever comes first, and a connection that fails is reopened at
most ``MAX_RECONNECTS`` times per level.

Throughput counts the responses *completed* inside the measured window (the warm-up is excluded);
latencies are those of the same responses. A response is an error unless it is a 200 whose body
contains the side's ``ok`` marker; a refused or dropped connection is an error too.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import select
import subprocess
import sys
import time
from typing import IO, Any

LOOPBACK = ("127.0.0.1", "::1", "localhost")
MAX_RECONNECTS = 100


def request_bytes(host: str, port: int, path: str, body: bytes) -> bytes:
    """One raw keep-alive HTTP/1.1 POST."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


class _Level:
    """Shared state of one level's connections."""

    def __init__(self, start_at: float, stop_at: float, max_requests: int) -> None:
        self.start_at, self.stop_at, self.max_requests = start_at, stop_at, max_requests
        self.sent = 0
        self.latencies: list[float] = []
        self.errors = 0
        self.error_kinds: dict[str, int] = {}
        self.reconnects = 0

    def more(self) -> bool:
        return time.perf_counter() < self.stop_at and self.sent < self.max_requests

    def record(self, started: float, done: float, ok: bool, kind: str = "") -> None:
        if not self.start_at <= done <= self.stop_at:
            return  # warm-up, or finished after the window closed
        if ok:
            self.latencies.append(done - started)
        else:
            self.errors += 1
            self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = -1
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length < 0:
        raise ValueError("response without content-length")
    return status, await reader.readexactly(length)


async def _client(host: str, port: int, bodies: list[bytes], offset: int, ok: bytes, lv: _Level) -> None:
    i = offset
    while lv.more():
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            lv.record(time.perf_counter(), time.perf_counter(), False, "connect")
            lv.reconnects += 1
            if lv.reconnects > MAX_RECONNECTS:
                return
            await asyncio.sleep(0.05)
            continue
        started = time.perf_counter()
        try:
            while lv.more():
                body = bodies[i % len(bodies)]
                i += 1
                lv.sent += 1
                started = time.perf_counter()
                writer.write(body)
                status, payload = await _read_response(reader)
                good = status == 200 and ok in payload
                lv.record(started, time.perf_counter(), good, "" if good else f"http {status}")
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
            lv.record(started, time.perf_counter(), False, type(e).__name__)
            lv.reconnects += 1
            if lv.reconnects > MAX_RECONNECTS:
                return
        finally:
            writer.close()


async def _drive(host: str, port: int, bodies: list[bytes], ok: bytes, cfg: dict[str, Any]) -> dict[str, Any]:
    c = int(cfg["concurrency"])
    t0 = time.perf_counter()
    lv = _Level(t0 + cfg["warmup"], t0 + cfg["warmup"] + cfg["seconds"], int(cfg["max_requests"]))
    step = max(1, len(bodies) // max(1, c))
    await asyncio.gather(*(_client(host, port, bodies, j * step, ok, lv) for j in range(c)))
    window = min(time.perf_counter(), lv.stop_at) - lv.start_at
    return {
        "latencies": lv.latencies,
        "errors": lv.errors,
        "error_kinds": lv.error_kinds,
        "window_s": window,
        "sent": lv.sent,
    }


def serve_levels(host: str, port: int, bodies: list[bytes], ok: bytes, conn: Any) -> None:
    """Answer each level request from ``conn`` until it sends ``None``.

    Each reply carries the level's raw latencies (seconds), its error count and this process's CPU
    seconds and wall seconds for the whole level (warm-up included), from which the benchmark
    reports the generator's share of the CPU.
    """
    if host not in LOOPBACK:
        conn.send({"fatal": f"the load generator only drives loopback addresses, not {host!r}"})
        return
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    while (cfg := conn.recv()) is not None:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        res = asyncio.run(_drive(host, port, bodies, ok, cfg))
        res["client_cpu_s"] = time.process_time() - cpu0
        res["client_wall_s"] = time.perf_counter() - wall0
        conn.send(res)


class PickleChannel:
    """Pickled messages over a pair of pipes (the generator's stdin and stdout)."""

    def __init__(self, reader: IO[bytes], writer: IO[bytes]) -> None:
        self.reader, self.writer = reader, writer

    def send(self, obj: Any) -> None:
        pickle.dump(obj, self.writer, protocol=pickle.HIGHEST_PROTOCOL)
        self.writer.flush()

    def poll(self, timeout: float) -> bool:
        return bool(select.select([self.reader], [], [], timeout)[0])

    def recv(self) -> Any:
        return pickle.load(self.reader)


class LoadGenerator:
    """The generator as a child process (``python _loadgen.py``): it imports nothing but asyncio and
    uvloop, so it starts in a fraction of a second and its memory is its own."""

    def __init__(self, host: str, port: int, bodies: list[bytes], ok: bytes) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.channel = PickleChannel(self.proc.stdout, self.proc.stdin)
        self.channel.send((host, port, bodies, ok))

    def level(self, cfg: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Run one level; raises ``RuntimeError`` if the generator fails or overruns ``timeout``."""
        with contextlib.suppress(OSError):  # a stopped generator's last message is still on the pipe
            self.channel.send(cfg)
        if not self.channel.poll(timeout):
            raise RuntimeError(f"the load generator did not finish a level within {timeout:g} s")
        try:
            res = self.channel.recv()
        except EOFError:
            raise RuntimeError(f"the load generator exited with code {self.proc.wait()}") from None
        if "fatal" in res:
            raise RuntimeError(res["fatal"])
        return res

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.channel.send(None)
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)


if __name__ == "__main__":
    channel = PickleChannel(sys.stdin.buffer, sys.stdout.buffer)
    serve_levels(*channel.recv(), channel)
