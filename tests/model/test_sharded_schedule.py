"""GRU4Rec's session split across DDP ranks: every transition trained exactly once, every rank the
same number of steps, and the weight check that turns a silent DDP desync into an error."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from recframe.model.seq.data import PAD, session_parallel_schedule
from recframe.model.seq.sharded import ShardedScheduleChunks, rank_schedule, ranks_agree, schedule_steps

ROOT = Path(__file__).resolve().parents[2]


def random_sessions(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 50, size=int(rng.integers(1, 12))) for _ in range(n)]


def transitions(inputs: np.ndarray, targets: np.ndarray) -> list[tuple[int, int]]:
    keep = targets != PAD
    return sorted(zip(inputs[keep].tolist(), targets[keep].tolist(), strict=True))


@pytest.mark.parametrize("world", [1, 2, 3])
def test_ranks_share_the_transitions_and_run_the_same_number_of_steps(world):
    sessions = random_sessions(200, seed=world)
    everything = transitions(*session_parallel_schedule(sessions, 8)[:2])
    parts = [rank_schedule(sessions, 8, rank, world) for rank in range(world)]
    assert len({len(p[0]) for p in parts}) == 1  # padded to the longest rank
    assert sorted(t for p in parts for t in transitions(p[0], p[1])) == everything
    if world > 1:  # each rank plays about 1/world of the steps one process would
        assert len(parts[0][0]) < 0.75 * len(session_parallel_schedule(sessions, 8)[0])


def test_the_step_count_matches_the_schedule_without_building_it():
    for seed in range(5):
        sessions = random_sessions(150, seed)
        assert schedule_steps([len(s) for s in sessions], 6) == len(session_parallel_schedule(sessions, 6)[0])
    assert schedule_steps([1, 1], 4) == 0


def test_the_chunks_of_one_process_are_the_whole_schedule_in_order():
    sessions = random_sessions(60, seed=9)
    inputs, targets, starts = session_parallel_schedule(sessions, 4)
    chunks = ShardedScheduleChunks(sessions, 4, chunk=7)
    got = list(chunks)
    assert len(got) == len(chunks) == -(-len(inputs) // 7) and chunks.n_steps == len(inputs)
    assert np.array_equal(torch.cat([c[0] for c in got]).numpy(), inputs)
    assert np.array_equal(torch.cat([c[2] for c in got]).numpy(), starts)


AGREE = """
import sys, torch
from recframe.model.seq.sharded import ranks_agree
torch.distributed.init_process_group("gloo")
torch.manual_seed(0)
net = torch.nn.Linear(4, 3)
if sys.argv[1] == "perturb" and torch.distributed.get_rank() == 1:
    with torch.no_grad():
        net.bias[0] += 1e-3
print(ranks_agree(net))
torch.distributed.destroy_process_group()
"""


@pytest.mark.parametrize("perturb", [False, True])
def test_ranks_agree_sees_one_differing_weight(perturb):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2"}
    env["PYTHONPATH"] = str(ROOT)
    cmd = [sys.executable, "-c", AGREE, "perturb" if perturb else "same"]
    procs = [subprocess.Popen(cmd, env={**env, "RANK": str(r)}, stdout=subprocess.PIPE, text=True) for r in range(2)]
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs == [[str(not perturb)], [str(not perturb)]]
    assert ranks_agree(torch.nn.Linear(2, 2))  # outside a process group there is nothing to compare
