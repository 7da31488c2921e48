"""The final GRU4Rec state of each session, for serving and batch scoring on CPU.

Why a path of its own: serving reads one state per session (the last), yet ``nn.GRU`` over a
right-padded batch runs every row for as many steps as the longest session, and on AMD EPYC CPUs
torch's small matrix products (the ``[batch, hidden] @ [hidden, 3 * hidden]`` of every step) run
several times slower than numpy's BLAS (scoring figures: docs/benchmarks.md). Here the sessions are
sorted by length, longest first, so at step ``t`` the sessions still running are a prefix of the
batch and padding costs nothing; the input projection of every event is one large product (or, for
the first layer, a lookup in a cached per-item table), the recurrence one small product per step,
both through numpy.

The arithmetic is PyTorch's GRU cell (gate order r, z, n; ``n = tanh(W_in x + b_in + r * (W_hn h
+ b_hn))``), so the states equal ``GRU4RecNet.sequence_states`` read at each session's last
position up to float32 rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

if TYPE_CHECKING:
    from recframe.model.seq.nets.gru import GRU4RecNet

T = TypeVar("T")


def eligible(net: GRU4RecNet) -> bool:
    """True when the fast path computes what ``sequence_states`` would: CPU, float32, inference."""
    return (
        not net.training
        and not torch.is_grad_enabled()
        and all(p.device.type == "cpu" and p.dtype == torch.float32 for p in net.parameters())
    )


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


def _sigmoid_(x: np.ndarray) -> np.ndarray:
    np.negative(x, out=x)
    np.exp(x, out=x)
    x += 1.0
    return np.reciprocal(x, out=x)


def _recur(
    gx: np.ndarray,
    w_hh: np.ndarray,
    b_hh: np.ndarray,
    counts: np.ndarray,
    keep_all: bool,
    items: np.ndarray | None = None,
) -> np.ndarray:
    """Run one GRU layer over time-major packed gate inputs ``gx`` (``[events, 3 * hidden]``).

    ``counts[t]`` sessions are still running at step ``t`` (a prefix of the length-sorted batch).
    With ``items`` (the packed events' item indices), ``gx`` is a per-item table instead and each
    step gathers its rows into one reused buffer: the packed gates of every event would be fresh
    memory (90 MB for 77k events of 100 units), and first-touching memory costs more than the math.
    Returns every step's states (packed) when ``keep_all``, else each session's last state.
    """
    hidden = w_hh.shape[1]
    events = len(gx) if items is None else len(items)
    w = np.ascontiguousarray(w_hh.T)  # [hidden, 3 * hidden]
    h = np.zeros((int(counts[0]), hidden), dtype=np.float32)
    out = np.empty((events, hidden), dtype=np.float32) if keep_all else None
    # every step's temporaries live in buffers sized for the first (largest) step
    rows = int(counts[0])
    step_gates = None if items is None else np.empty((rows, 3 * hidden), dtype=np.float32)
    gh_buf = np.empty((rows, 3 * hidden), dtype=np.float32)
    rz_buf = np.empty((rows, 2 * hidden), dtype=np.float32)
    n_buf = np.empty((rows, hidden), dtype=np.float32)
    start = 0
    for t, m in enumerate(counts.tolist()):
        if step_gates is None:
            g = gx[start : start + m]
        else:
            g = np.take(gx, items[start : start + m], axis=0, out=step_gates[:m])
        hm = h[:m]
        if t == 0:  # h = 0
            gh = np.broadcast_to(b_hh, (m, 3 * hidden))
        else:
            gh = np.matmul(hm, w, out=gh_buf[:m])
            gh += b_hh
        rz = np.add(g[:, : 2 * hidden], gh[:, : 2 * hidden], out=rz_buf[:m])
        _sigmoid_(rz)
        r, z = rz[:, :hidden], rz[:, hidden:]
        n = np.multiply(gh[:, 2 * hidden :], r, out=n_buf[:m])
        n += g[:, 2 * hidden :]
        np.tanh(n, out=n)
        hm -= n  # h' = n + z * (h - n)
        hm *= z
        hm += n
        if out is not None:
            out[start : start + m] = hm
        start += m
    return out if keep_all else h


#: sessions per worker below which the recurrence stays on the calling thread
SESSIONS_PER_WORKER = 2048


def last_states(net: GRU4RecNet, sessions: Sequence[np.ndarray]) -> torch.Tensor:
    """Final-layer state ``[len(sessions), d]`` after each (non-empty) session's last item.

    Many sessions (batch scoring) are split into interleaved shares of the length order, one per
    torch intra-op thread, each run with single-threaded BLAS: the recurrence is a chain of small
    steps, and a thread of its own per share keeps every core busy where a 2-thread BLAS call per
    step would synchronise the cores at every step.
    """
    lens = np.fromiter((len(s) for s in sessions), dtype=np.int64, count=len(sessions))
    if len(lens) == 0 or lens.min() < 1:
        raise ValueError("last_states needs non-empty sessions")
    workers = min(torch.get_num_threads(), len(lens) // SESSIONS_PER_WORKER)
    if workers < 2:
        return torch.from_numpy(_states(net, sessions, lens))
    if net.onehot is None and len(net.grus):  # the shared input-gate table's rows, filled once up front
        _input_gates(net, net.grus[0], np.concatenate([np.asarray(s, dtype=np.int64) for s in sessions]))
    by_length = np.argsort(-lens, kind="stable")
    shares = [by_length[w::workers] for w in range(workers)]
    parts = _on_threads(lambda idx: _states(net, [sessions[i] for i in idx], lens[idx]), shares)
    out = np.empty((len(lens), parts[0].shape[1]), dtype=np.float32)
    for idx, part in zip(shares, parts, strict=True):
        out[idx] = part
    return torch.from_numpy(out)


#: sessions that run through the recurrence together: a step's gates and states for 1,024 sessions
#: of 100 units (about 4 MB) stay in the core's caches where a whole share's (tens of MB) stream from
#: memory at every step, and buffers this small are reused by the allocator instead of being freshly
#: mapped (fresh huge pages can stall the first pass of a process on compaction)
CHUNK_SESSIONS = 1024


def _states(net: GRU4RecNet, sessions: Sequence[np.ndarray], lens: np.ndarray) -> np.ndarray:
    """:func:`last_states` of ``sessions`` (lengths ``lens``) on the calling thread, as an array.

    The sessions run longest first, ``CHUNK_SESSIONS`` at a time.
    """
    order = np.argsort(-lens, kind="stable")
    out: np.ndarray | None = None
    for lo in range(0, len(order), CHUNK_SESSIONS):
        idx = order[lo : lo + CHUNK_SESSIONS]
        part = _sorted_states(net, [sessions[i] for i in idx], lens[idx])
        if out is None:
            out = np.empty((len(lens), part.shape[1]), dtype=np.float32)
        out[idx] = part
    assert out is not None  # lens is never empty here
    return out


def _sorted_states(net: GRU4RecNet, sessions: Sequence[np.ndarray], lens: np.ndarray) -> np.ndarray:
    """The last states of ``sessions``, already ordered longest first (``lens`` non-increasing)."""
    steps = int(lens[0])
    counts = (lens[None, :] > np.arange(steps)[:, None]).sum(axis=1)
    flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in sessions])
    # time-major packing: step t holds the t-th item of the counts[t] longest sessions
    offsets = np.concatenate([[0], np.cumsum(lens)[:-1]])
    step_of = np.arange(len(flat)) - np.repeat(offsets, lens)
    rank = np.repeat(np.arange(len(lens)), lens)
    packed = flat[np.lexsort((rank, step_of))]

    layers = list(net.grus)
    x = None
    if net.onehot is not None:  # the first layer reads the item index: its input gates are a lookup
        gx = _np(net.onehot.wx.weight)[packed] + _np(net.onehot.bx)
        x = _recur(gx, _np(net.onehot.wh.weight), _np(net.onehot.wh.bias), counts, keep_all=bool(layers))
    for i, gru in enumerate(layers):
        table = _input_gates(net, gru, packed) if i == 0 and net.onehot is None else None
        if table is not None:  # the step's rows are looked up as the recurrence reaches them
            gx, items = table, packed
        else:
            if x is None:  # the first layer without a table: the events' embeddings
                x = _np(net.Wy.weight if net.constrained else net.E.weight)[packed]
            gx, items = x @ np.ascontiguousarray(_np(gru.weight_ih_l0).T), None
            gx += _np(gru.bias_ih_l0)
        x = _recur(gx, _np(gru.weight_hh_l0), _np(gru.bias_hh_l0), counts, i < len(layers) - 1, items)
    return x  # the last layer's state of each session, in the given order


#: largest per-item input-gate table kept (float32 values): 43k items x 300 gates is 13M
MAX_TABLE_VALUES = 64_000_000


def _key(net: GRU4RecNet, gru: torch.nn.GRU) -> tuple:
    from recframe.model.seq.nets.item_scores import _version

    emb = net.Wy.weight if net.constrained else net.E.weight
    return tuple((t.data_ptr(), _version(t)) for t in (emb, gru.weight_ih_l0, gru.bias_ih_l0))


def _input_gates(net: GRU4RecNet, gru: torch.nn.GRU, items: np.ndarray) -> np.ndarray | None:
    """The first layer's input gates per item, ``[n_items, 3 * hidden]``, with the rows of ``items`` filled.

    The gates of an event depend only on its item, so each item's row is computed once, when an
    event of it is first met (with the rest of its block of ``GATE_BLOCK`` items), and looked up
    from then on (serving, the next batch). The table is cached on the network and started afresh
    when a weight changes (its version counter moves); not kept for
    huge catalogues (None: project the events instead). Concurrent callers may compute a row twice,
    with the same values; a row is marked filled only once written.
    """
    key = _key(net, gru)
    cache = getattr(net, "_input_gates_cache", None)
    if cache is None or cache[0] != key:
        emb = _np(net.Wy.weight if net.constrained else net.E.weight)
        if emb.shape[0] * gru.weight_ih_l0.shape[0] > MAX_TABLE_VALUES:
            return None
        # torch's allocator maps base pages, numpy's asks for huge ones: rows are filled sparsely,
        # and a fresh huge page can stall on the kernel's compaction (a whole batch's worth of
        # scattered rows measured 0.11 s that way against 0.03 s)
        table = torch.empty((emb.shape[0], gru.weight_ih_l0.shape[0]), dtype=torch.float32).numpy()
        cache = (key, table, np.zeros(emb.shape[0], dtype=bool))
        net._input_gates_cache = cache
    _, table, filled = cache
    missing = items[~filled[items]]
    if len(missing):
        _fill_blocks(net, gru, table, filled, np.unique(missing // GATE_BLOCK))
    return table


#: items whose input gates are computed together: always the same aligned block of the catalogue;
#: 256 rows run the product near its best speed (64 took twice as long over a whole catalogue),
#: and a block costs a serving request under a millisecond
GATE_BLOCK = 256


def _fill_blocks(net: GRU4RecNet, gru: torch.nn.GRU, table: np.ndarray, filled: np.ndarray, blocks: np.ndarray) -> None:
    """Compute the table rows of the item blocks ``blocks`` (``GATE_BLOCK`` items each, the last one shorter).

    Each block is its own ``[GATE_BLOCK, d] @ [d, 3 * hidden]`` single-threaded product, so an
    item's row comes out of the same product whatever else a call needs: its float32 value never
    depends on which items earlier calls met (a model scores the same after a save and load as
    before it). Many blocks (a batch's first sessions meet most of a catalogue) are shared among
    torch's intra-op threads, since the callers wait for them.
    """
    emb = _np(net.Wy.weight if net.constrained else net.E.weight)
    w = np.ascontiguousarray(_np(gru.weight_ih_l0).T)
    bias = _np(gru.bias_ih_l0)
    n = emb.shape[0]
    spans = [(lo, min(lo + GATE_BLOCK, n)) for lo in (blocks * GATE_BLOCK).tolist()]

    def fill(part: list[tuple[int, int]]) -> None:
        for lo, hi in part:
            np.matmul(emb[lo:hi], w, out=table[lo:hi])
            table[lo:hi] += bias
            filled[lo:hi] = True

    workers = max(1, min(torch.get_num_threads(), len(spans) // FILL_BLOCKS_PER_WORKER))
    _on_threads(fill, [spans[i::workers] for i in range(workers)])


def _on_threads(fn: Callable[[Any], T], shares: Sequence[Any]) -> list[T]:
    """``fn(share)`` for every share, each on a thread of its own (the caller's when there is one
    share), with single-threaded BLAS: a share is a chain of small products, which a multi-threaded
    BLAS call would split across the cores and synchronise at every product. Results in share order."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        if len(shares) < 2:
            return [fn(share) for share in shares]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(shares)) as pool:
            return list(pool.map(fn, shares))


#: blocks of input gates one thread fills at least, before a fill is shared among threads
FILL_BLOCKS_PER_WORKER = 8
