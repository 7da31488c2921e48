"""The process-wide settings of a serving process take effect and are undone exactly."""

from __future__ import annotations

import gc
import sys

import numpy as np
import torch
from threadpoolctl import threadpool_info

from recframe.deployer.serving_process import freeze_heap, serving_threads, short_switch_interval


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_serving_threads_limit_torch_and_numpy_blas_then_restore() -> None:
    np.ones((64, 64)) @ np.ones((64, 64))  # numpy's BLAS is loaded
    torch_before, blas_before = torch.get_num_threads(), _blas_threads()
    assert blas_before, "numpy links a BLAS that threadpoolctl can see"
    undo = serving_threads(1)
    try:
        assert torch.get_num_threads() == 1
        assert _blas_threads() == [1] * len(blas_before)  # not only torch: the BLAS numpy uses too
    finally:
        undo()
    assert torch.get_num_threads() == torch_before and _blas_threads() == blas_before


def test_switch_interval_and_frozen_heap_are_undone() -> None:
    interval = sys.getswitchinterval()
    undo = short_switch_interval(0.0005)
    assert sys.getswitchinterval() == 0.0005
    undo()
    assert sys.getswitchinterval() == interval

    frozen_before = gc.get_freeze_count()
    undo = freeze_heap()
    assert gc.get_freeze_count() > frozen_before
    undo()
    assert gc.get_freeze_count() == 0
