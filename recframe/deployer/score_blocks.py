"""Batch scoring's inner loop: item product and top-k per block of rows, one block per core at a time.

Why: a batch of sessions scored as one ``[1024, n_items]`` matrix (176 MB at 43k items) runs a
2-thread BLAS product and torch top-k that synchronise the cores at every call, which on a shared
machine means waiting for a descheduled thread, and its buffer is more fresh memory to first-touch
(page faults, costly on a VM) than the smaller per-worker buffers here. Here the blocks are
independent: each worker thread takes the next block, multiplies it into its own reused buffer
(the faster of numpy's and torch's GEMM, see ``item_scores``) and ranks it (``topk``), all
single-threaded and releasing the GIL while they compute (docs/benchmarks.md, Batch scoring).

A sequence model's states (:class:`StatesAhead`) are computed part by part on a thread of their own
while the blocks score: split across the cores the recurrence's many small steps ran hardly faster
than on one, and waiting for all of them before the first block left a core idle.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

#: rows scored per block: 64 to 512 measured alike on a 2-core AMD EPYC; on a 2-core Intel Xeon,
#: where torch's GEMM is the faster one, 128 beat 64 by a tenth and 192 by a quarter
#: (docs/benchmarks.md, Batch scoring)
SCORE_ROWS = 128
#: sessions whose states one call computes ahead of the blocks (smaller parts cost more per session
#: in the recurrence's per-call work)
AHEAD_ROWS = 1024
#: sessions whose states are computed before any block starts (two blocks' worth: one core waits
#: for them while the other idles)
FIRST_ROWS = 2 * SCORE_ROWS


def torch_threads(n: int = 1) -> None:
    """Give torch's operations on the calling thread ``n`` threads, from its first operation on.

    OpenMP keeps its thread count per thread, and torch applies its own setting to a new thread
    only when that thread first runs one of torch's parallel loops. A product (``torch.mm``, MKL)
    run before that takes OpenMP's default, all cores: a block worker's first products ran on two
    threads each, two workers on two cores running four (CPU time twice the wall time of one
    worker's products, measured on a fresh thread). The block workers, the states thread and the
    serving predict thread call this first.
    """
    import torch

    torch.set_num_threads(n)


def run_blocks(
    n_rows: int, width: int, work: Callable[[int, int, torch.Tensor], None], block: int = SCORE_ROWS
) -> None:
    """Call ``work(lo, hi, buffer)`` for the row blocks ``[lo, hi)`` of ``n_rows``, on parallel workers.

    ``buffer`` is a float32 ``[hi - lo, width]`` view of one reused scratch matrix per worker. There
    are as many workers as torch's intra-op threads (the process's CPU budget: serving processes and
    users set it), each running BLAS and torch with one thread; torch's and BLAS's thread settings
    are restored afterwards. An exception in any block is raised here, after the workers stop.
    """
    import torch
    from threadpoolctl import threadpool_limits

    starts = list(range(0, n_rows, block))
    workers = min(torch.get_num_threads(), len(starts))
    if workers <= 1:
        buffer = torch.empty((min(block, n_rows), width), dtype=torch.float32)
        for lo in starts:
            hi = min(lo + block, n_rows)
            work(lo, hi, buffer[: hi - lo])
        return
    lock = threading.Lock()
    queue = iter(starts)
    failed = threading.Event()

    def worker() -> None:
        torch_threads(1)
        buffer = torch.empty((block, width), dtype=torch.float32)
        while not failed.is_set():
            with lock:
                lo = next(queue, None)
            if lo is None:
                return
            hi = min(lo + block, n_rows)
            try:
                work(lo, hi, buffer[: hi - lo])
            except BaseException:
                failed.set()
                raise

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
            for done in [pool.submit(worker) for _ in range(workers)]:
                done.result()
    finally:
        torch.set_num_threads(threads)


class StatesAhead:
    """The states of a batch's sessions, computed ``part_rows`` at a time on a thread of its own.

    ``first`` holds the states of the first sessions (computed by the caller, which learns the
    states' device and width from it); the thread computes the rest in order with ``compute`` (a
    model's ``next_states``) while :meth:`rows` hands finished rows to the blocks, waiting when a
    block overtakes it. The thread starts at the first :meth:`rows` call, so it always runs under
    the blocks' thread settings (single-threaded BLAS), and the states do not depend on timing.
    Use as a context manager: leaving stops the thread after its current part. An exception in
    ``compute`` is raised by every :meth:`rows` call that waits for it.
    """

    def __init__(self, compute: Callable[[Sequence[Any]], torch.Tensor], sessions: Sequence[Any],
                 first: torch.Tensor, part_rows: int = AHEAD_ROWS) -> None:  # fmt: skip
        import torch

        self._compute, self._sessions, self._part = compute, sessions, max(1, int(part_rows))
        self._states = torch.empty((len(sessions), first.shape[1]), dtype=first.dtype)
        self._states[: len(first)] = first
        self._ready = len(first)
        self._error: BaseException | None = None
        self._stop = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> StatesAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._stop = True
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        torch_threads(1)
        n = len(self._sessions)
        try:
            for lo in range(self._ready, n, self._part):
                if self._stop:
                    return
                hi = min(lo + self._part, n)
                self._states[lo:hi] = self._compute(self._sessions[lo:hi])
                with self._cond:  # the rows are written before they are announced
                    self._ready = hi
                    self._cond.notify_all()
        except BaseException as e:
            with self._cond:
                self._error = e
                self._cond.notify_all()

    def rows(self, lo: int, hi: int) -> torch.Tensor:
        """The states of sessions ``[lo, hi)``, once computed."""
        with self._cond:
            if self._thread is None and not self._stop and self._ready < len(self._sessions):
                self._thread = threading.Thread(target=self._run, name="recframe-states-ahead", daemon=True)
                self._thread.start()
            self._cond.wait_for(lambda: self._ready >= hi or self._error is not None)
            if self._ready < hi:
                assert self._error is not None
                raise self._error
        return self._states[lo:hi]
