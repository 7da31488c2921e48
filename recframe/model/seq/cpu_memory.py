"""Keep freed memory in the process during CPU training (glibc's ``mallopt``).

A session-parallel step allocates and frees dozens of 1-5 MB tensors (the [2432, 512] item rows of
the Diginetica preset are 5 MB). glibc serves blocks above its mmap threshold (128 kB at start,
raised only as such blocks are freed) with fresh ``mmap`` calls and hands freed heap tops back to
the kernel above its trim threshold, so the same memory is faulted in again page by page on the
next step, which makes an elementwise op with a new output many times slower than one writing into
an existing tensor. Raising both thresholds keeps those blocks on the heap for
reuse, which is what a caching allocator (CUDA's, jemalloc) does anyway.

The setting is process-wide and stays for the life of the process, so it applies only where
recframe itself trains on CPU (:func:`recframe.model.seq.training.run_fit`, ``trainer.cpu_keep_memory``)
and can be turned off. Elsewhere (musl, macOS, Windows) it is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger("recframe")

#: glibc's mallopt parameter numbers (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: glibc refuses an mmap threshold above 32 MiB on 64-bit systems (HEAP_MAX_SIZE / 2)
MAX_MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 1024 * 1024 * 1024

_applied = False


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True when they are in effect.

    Blocks up to 32 MiB then come from the heap and up to 1 GiB of freed heap stays mapped, so a
    training loop reuses its buffers instead of faulting fresh pages in every step.
    """
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl without mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, MAX_MMAP_THRESHOLD) != 1 or mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1:
        log.debug("mallopt refused recframe's thresholds; CPU training keeps glibc's defaults")
        return False
    _applied = True
    return True
