"""Batch scoring's parallel row blocks: every row once, per-worker buffers, errors and thread settings;
the states computed ahead of them."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from recframe.deployer import score_blocks
from recframe.deployer.score_blocks import StatesAhead, run_blocks


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


def test_states_ahead_hands_out_every_row_in_order_of_computation():
    sessions = [np.full(3, i, dtype=np.int64) for i in range(50)]
    calls: list[tuple[int, int]] = []

    def compute(part):
        calls.append((int(part[0][0]), len(part)))
        return torch.tensor([[float(s[0]), 2.0 * s[0]] for s in part])

    first = compute(sessions[:8])
    with StatesAhead(compute, sessions, first, part_rows=7) as ahead:
        got = torch.cat([ahead.rows(lo, min(lo + 5, 50)) for lo in range(0, 50, 5)])
    assert got[:, 0].tolist() == [float(i) for i in range(50)] and got[:, 1].tolist() == [2.0 * i for i in range(50)]
    assert calls == [(0, 8), (8, 7), (15, 7), (22, 7), (29, 7), (36, 7), (43, 7)]  # each session once


def test_states_ahead_raises_the_computations_error_in_the_blocks():
    sessions = [np.zeros(2, dtype=np.int64)] * 25

    def compute(part):
        if len(part) < 10:  # the last part
            raise ValueError("state computation failed")
        return torch.zeros((len(part), 4))

    with StatesAhead(compute, sessions, torch.zeros((10, 4)), part_rows=10) as ahead:
        assert ahead.rows(0, 20).shape == (20, 4)
        with pytest.raises(ValueError, match="state computation failed"):
            ahead.rows(20, 25)


def test_every_thread_that_runs_torch_sets_its_thread_count_first(monkeypatch):
    """Block workers and the states thread each set torch's threads on themselves before any work."""
    calls: list[tuple[int, int]] = []
    real = score_blocks.torch_threads

    def recording(n: int = 1) -> None:
        calls.append((threading.get_ident(), n))
        real(n)

    monkeypatch.setattr(score_blocks, "torch_threads", recording)
    workers: set[int] = set()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        sessions = [np.full(2, i, dtype=np.int64) for i in range(300)]
        with StatesAhead(lambda part: torch.zeros((len(part), 3)), sessions, torch.zeros((10, 3)), 64) as states:

            def work(lo: int, hi: int, buffer: torch.Tensor) -> None:
                assert (threading.get_ident(), 1) in calls  # set before this worker's first block
                workers.add(threading.get_ident())
                states.rows(lo, hi)

            run_blocks(300, 4, work, block=32)
    finally:
        torch.set_num_threads(before)
    assert len(workers) == 2 and len(calls) == 3 and {n for _, n in calls} == {1}
