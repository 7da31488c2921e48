"""Process-wide settings of a serving process: its math threads, its GIL hand-off and its heap.

A serving process runs an event loop (HTTP, JSON) and one scoring thread side by side, and on a
small machine shares its cores with its clients too. Three process-wide defaults work against that:

* **Math threads.** ``torch.set_num_threads`` alone leaves numpy's BLAS (through which sequence
  models compute their item scores) with one thread per core; its extra workers spin between calls
  on the event loop's core and cost about as much CPU per request as the scoring itself.
  :func:`serving_threads` sets both.
* **GIL hand-off.** The scoring thread releases the GIL inside every torch and BLAS call and needs it
  back after each; while the event loop is busy it waits for the interpreter's switch interval
  (5 ms) each time, a few dozen times per batch. A shorter interval bounds that wait.
* **Heap.** After the model is loaded, a few hundred thousand long-lived objects (torch, the model,
  the web stack) sit in the collector's oldest generation, and a full collection walks them all,
  pausing the server for tens to hundreds of milliseconds. :func:`freeze_heap` moves them out of its
  sight (``gc.freeze``); what requests allocate is collected as before.

Each setter returns the function that undoes it, so an endpoint served on a thread of a pipeline or
test process (``deployer=local``, ``workers: 1``) hands the process back as it found it.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)

SWITCH_INTERVAL_S = 0.0005


def serving_threads(n: int) -> Callable[[], None]:
    """Give torch's intra-op pool and the BLAS libraries loaded in this process ``n`` threads each."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    blas = None
    try:
        from threadpoolctl import threadpool_limits

        blas = threadpool_limits(limits=n, user_api="blas")
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        log.debug("threadpoolctl is not installed: numpy's BLAS keeps its own thread count")

    def restore() -> None:
        if blas is not None:  # first: restoring torch's bundled MKL also moves torch's count
            blas.restore_original_limits()
        torch.set_num_threads(saved)

    return restore


def short_switch_interval(seconds: float = SWITCH_INTERVAL_S) -> Callable[[], None]:
    """Let a thread waiting for the GIL take it after ``seconds`` instead of the default 5 ms."""
    saved = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    return lambda: sys.setswitchinterval(saved)


def freeze_heap() -> Callable[[], None]:
    """Keep every object alive now out of the cyclic collector's walks (call once the model is loaded).

    The undo unfreezes only what was not frozen before, so endpoints nested in one process (tests)
    leave the heap to the outermost one."""
    outer = gc.get_freeze_count() > 0
    gc.freeze()
    return (lambda: None) if outer else gc.unfreeze
