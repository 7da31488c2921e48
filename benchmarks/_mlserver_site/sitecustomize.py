"""Lets MLServer 1.7.1 start ``parallel_workers`` under uvloop >= 0.22 (MLServer issue #2286).

An MLServer inference worker calls ``asyncio.get_event_loop()`` before any loop exists, which
uvloop 0.22 and later refuse, so every worker dies at start. The serving benchmark puts this folder
on ``PYTHONPATH`` of the MLServer processes only, with ``RECFRAME_BENCH_MLSERVER_WORKER_FIX=1``;
the worker then gets a fresh loop first, as the open upstream fix (MLServer pull request #2285)
does, and everything else in MLServer runs as released.
"""

import os

if os.environ.get("RECFRAME_BENCH_MLSERVER_WORKER_FIX") == "1":
    try:
        import asyncio

        from mlserver.parallel import worker as _worker
    except ImportError:
        pass
    else:
        _original = _worker.Worker._ignore_signals

        def _ignore_signals(self):  # noqa: ANN001, ANN202
            try:
                asyncio.get_event_loop()
            except RuntimeError:
                asyncio.set_event_loop(asyncio.new_event_loop())
            _original(self)

        _worker.Worker._ignore_signals = _ignore_signals
