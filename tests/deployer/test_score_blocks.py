"""Batch scoring's parallel row blocks: every row once, per-worker buffers, errors and thread settings."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from recframe.deployer.score_blocks import run_blocks


@pytest.mark.parametrize("threads", [1, 2])
def test_every_row_is_scored_once_into_a_buffer_of_its_block(threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        seen = np.zeros(1000, dtype=np.int64)
        buffers: set[tuple[int, int]] = set()
        lock = threading.Lock()

        def work(lo: int, hi: int, buffer: torch.Tensor) -> None:
            assert buffer.shape == (hi - lo, 9) and buffer.dtype == torch.float32
            assert hi - lo <= 64
            buffer.fill_(float(lo))  # writable scratch
            with lock:
                seen[lo:hi] += 1
                buffers.add((buffer.data_ptr(), threading.get_ident()))

        run_blocks(1000, 9, work, block=64)
        assert (seen == 1).all()
        # one reused buffer per worker: never more buffers than workers
        assert len({ptr for ptr, _ in buffers}) <= threads
        assert torch.get_num_threads() == threads  # restored after the workers ran single-threaded
    finally:
        torch.set_num_threads(before)


def test_an_error_in_a_block_is_raised_and_settings_restored():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:

        def work(lo: int, hi: int, buffer: torch.Tensor) -> None:
            assert torch.get_num_threads() == 1  # the workers run torch single-threaded
            if lo == 128:
                raise RuntimeError("block failed")

        with pytest.raises(RuntimeError, match="block failed"):
            run_blocks(1000, 4, work, block=64)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
