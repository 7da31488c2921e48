"""GRU4Rec's session-parallel schedule, split across DDP ranks.

Lightning's ``DistributedSampler`` cannot split a session-parallel schedule: its chunks are
consecutive steps whose hidden states flow from one to the next, so handing chunk 0 to one rank
and chunk 1 to another breaks every session that crosses a chunk boundary. And a rank that runs
out of steps before the others stops calling ``backward``, which the other ranks' gradient
all-reduce then waits for forever.

Here the *sessions* are split instead: rank ``r`` of ``w`` plays sessions ``r, r + w, r + 2w, ...``
(in start-time order) on its own ``batch_size`` lanes, so each rank reads a ``1 / w`` share of the
data. Every rank pads its schedule with empty steps to the longest rank's length, so all ranks run
the same number of steps, and the module turns an empty step into a zero-loss update that still
takes part in the all-reduce (:meth:`recframe.model.seq.gru.GRU4RecModule.training_step`).

The split is made when the loader is first read (``len`` or iteration), which Lightning does after
it has started the process group: the same object works in one process and under DDP. It is an
``IterableDataset``, so Lightning never wraps it in a sampler of its own, whatever
``use_distributed_sampler`` says.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from recframe.model.seq.data import session_parallel_schedule


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of ranks (``(0, 1)`` outside a process group)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def schedule_steps(lengths: Sequence[int], batch_size: int) -> int:
    """How many steps :func:`session_parallel_schedule` takes for sessions of these lengths.

    The same lane assignment without building the arrays, so each rank can learn the other ranks'
    schedule lengths without exchanging anything.
    """
    free = [(0, b) for b in range(batch_size)]
    end = 0
    for n in lengths:
        if n < 2:
            continue
        t, b = heapq.heappop(free)
        end = max(end, t + n - 1)
        heapq.heappush(free, (t + n - 1, b))
    return end


def rank_schedule(
    sessions: Sequence[np.ndarray], batch_size: int, rank: int, world: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rank ``rank``'s share of the sessions as a schedule padded to the longest rank's step count."""
    if world == 1:
        return session_parallel_schedule(sessions, batch_size)
    shares = [sessions[r::world] for r in range(world)]
    longest = max(schedule_steps([len(s) for s in share], batch_size) for share in shares)
    inputs, targets, starts = session_parallel_schedule(shares[rank], batch_size)
    pad = longest - len(inputs)
    if pad:
        inputs = np.concatenate([inputs, np.full((pad, batch_size), -1, dtype=inputs.dtype)])
        targets = np.concatenate([targets, np.full((pad, batch_size), -1, dtype=targets.dtype)])
        starts = np.concatenate([starts, np.zeros((pad, batch_size), dtype=bool)])
    return inputs, targets, starts


def ranks_agree(module: torch.nn.Module) -> bool:
    """Whether every rank holds the same weights (compared by per-parameter sums; one all-reduce each way).

    Manual optimisation with sparse gradients is where DDP can silently stop synchronising (a rank
    skipping a backward, a parameter without a gradient): this check turns that into an error
    instead of an artifact trained on half of the data. True outside a process group.
    """
    rank, world = rank_and_world()
    if world == 1:
        return True
    sums = torch.stack([p.detach().double().sum() for p in module.parameters()])
    low, high = sums.clone(), sums.clone()
    torch.distributed.all_reduce(low, op=torch.distributed.ReduceOp.MIN)
    torch.distributed.all_reduce(high, op=torch.distributed.ReduceOp.MAX)
    return bool(torch.equal(low, high))


class ShardedScheduleChunks(torch.utils.data.IterableDataset):
    """This rank's session-parallel schedule in chunks of ``chunk`` consecutive steps, in order.

    One item is one chunk ``(inputs, targets, starts)``, each ``[<= chunk, batch_size]``; never
    shuffle them (hidden states flow from chunk to chunk).
    """

    def __init__(self, sessions: Sequence[np.ndarray], batch_size: int, chunk: int) -> None:
        self.sessions = sessions
        self.batch_size = int(batch_size)
        self.chunk = max(1, int(chunk))
        self._split: tuple[int, int] | None = None
        self._schedule: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def schedule(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """This rank's padded schedule, built for the current process group (rebuilt if it changed)."""
        split = rank_and_world()
        if self._schedule is None or split != self._split:
            arrays = rank_schedule(self.sessions, self.batch_size, *split)
            self._schedule = tuple(torch.from_numpy(a) for a in arrays)
            self._split = split
        return self._schedule

    @property
    def n_steps(self) -> int:
        """Steps per epoch on this rank (of the schedule last built, so it can be read after the fit)."""
        return len((self._schedule or self.schedule())[0])

    def __len__(self) -> int:
        return (self.n_steps + self.chunk - 1) // self.chunk

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        inputs, targets, starts = self.schedule()
        for lo in range(0, len(inputs), self.chunk):
            sl = slice(lo, lo + self.chunk)
            yield inputs[sl], targets[sl], starts[sl]
