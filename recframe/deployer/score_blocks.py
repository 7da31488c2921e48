"""Batch scoring's inner loop: item product and top-k per block of rows, one block per core at a time.

Why: a batch of sessions scored as one ``[1024, n_items]`` matrix (176 MB at 43k items) runs a
2-thread BLAS product and torch top-k that synchronise the cores at every call, which on a shared
machine means waiting for a descheduled thread, and its buffer is more fresh memory to first-touch
(page faults, costly on a VM) than the smaller per-worker buffers here. Here the blocks are
independent: each worker thread takes the next block, multiplies it into its own reused buffer
(numpy's BLAS) and ranks it (torch), both single-threaded and both releasing the GIL while they
compute. Smaller blocks would also keep the scores in cache for the top-k, but measured no faster
(docs/benchmarks.md, Batch scoring).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: rows scored per block: 64 to 512 measured alike on a 2-core AMD EPYC (docs/benchmarks.md, Batch
#: scoring); more than ``item_scores.ONEDNN_ROWS[1]`` keeps every full block on the BLAS product
SCORE_ROWS = 256


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
