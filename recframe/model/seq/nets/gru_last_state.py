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

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from recframe.model.seq.nets.gru import GRU4RecNet


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
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    if net.onehot is None and len(net.grus):  # the shared input-gate table, decided on every event
        _input_gates(net, net.grus[0], int(lens.sum()))
    by_length = np.argsort(-lens, kind="stable")
    shares = [by_length[w::workers] for w in range(workers)]
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(lambda idx: _states(net, [sessions[i] for i in idx], lens[idx]), shares))
    out = np.empty((len(lens), parts[0].shape[1]), dtype=np.float32)
    for idx, part in zip(shares, parts, strict=True):
        out[idx] = part
    return torch.from_numpy(out)


def _states(net: GRU4RecNet, sessions: Sequence[np.ndarray], lens: np.ndarray) -> np.ndarray:
    """:func:`last_states` of ``sessions`` (lengths ``lens``) on the calling thread, as an array."""
    order = np.argsort(-lens, kind="stable")
    sorted_lens = lens[order]
    steps = int(sorted_lens[0])
    counts = (sorted_lens[None, :] > np.arange(steps)[:, None]).sum(axis=1)
    flat = np.concatenate([np.asarray(sessions[i], dtype=np.int64) for i in order])
    # time-major packing: step t holds the t-th item of the counts[t] longest sessions
    offsets = np.concatenate([[0], np.cumsum(sorted_lens)[:-1]])
    step_of = np.arange(len(flat)) - np.repeat(offsets, sorted_lens)
    rank = np.repeat(np.arange(len(lens)), sorted_lens)
    packed = flat[np.lexsort((rank, step_of))]

    layers = list(net.grus)
    if net.onehot is not None:  # the first layer reads the item index: its input gates are a lookup
        gx = _np(net.onehot.wx.weight)[packed] + _np(net.onehot.bx)
        x = _recur(gx, _np(net.onehot.wh.weight), _np(net.onehot.wh.bias), counts, keep_all=bool(layers))
    else:
        x = _np(net.Wy.weight if net.constrained else net.E.weight)[packed] if not _cached(net) else None
    for i, gru in enumerate(layers):
        table = _input_gates(net, gru, len(packed)) if i == 0 and net.onehot is None else None
        if table is not None:  # the step's rows are looked up as the recurrence reaches them
            gx, items = table, packed
        else:
            gx, items = x @ np.ascontiguousarray(_np(gru.weight_ih_l0).T), None
            gx += _np(gru.bias_ih_l0)
        x = _recur(gx, _np(gru.weight_hh_l0), _np(gru.bias_hh_l0), counts, i < len(layers) - 1, items)
    out = np.empty_like(x)  # x: the last layer's state of each session, in length order
    out[order] = x
    return out


#: largest per-item input-gate table kept (float32 values): 43k items x 300 gates is 13M
MAX_TABLE_VALUES = 64_000_000


def _key(net: GRU4RecNet, gru: torch.nn.GRU) -> tuple:
    from recframe.model.seq.nets.item_scores import _version

    emb = net.Wy.weight if net.constrained else net.E.weight
    return tuple((t.data_ptr(), _version(t)) for t in (emb, gru.weight_ih_l0, gru.bias_ih_l0))


def _cached(net: GRU4RecNet) -> bool:
    cache = getattr(net, "_input_gates_cache", None)
    return net.onehot is None and cache is not None and cache[0] == _key(net, net.grus[0])


def _input_gates(net: GRU4RecNet, gru: torch.nn.GRU, events: int) -> np.ndarray | None:
    """The first layer's input gates of every item, ``[n_items, 3 * hidden]``, cached on the network.

    The gates of an event depend only on its item, so a call with about as many events as items
    pays for the table at once, and later calls (serving, the next batch) look rows up instead of
    multiplying. Rebuilt when a weight changes (its version counter moves); not kept for huge
    catalogues.
    """
    key = _key(net, gru)
    cache = getattr(net, "_input_gates_cache", None)
    if cache is not None and cache[0] == key:
        return cache[1]
    emb = _np(net.Wy.weight if net.constrained else net.E.weight)
    if emb.shape[0] * gru.weight_ih_l0.shape[0] > MAX_TABLE_VALUES or 2 * events < emb.shape[0]:
        return None
    table = emb @ np.ascontiguousarray(_np(gru.weight_ih_l0).T)
    table += _np(gru.bias_ih_l0)
    net._input_gates_cache = (key, table)
    return table
