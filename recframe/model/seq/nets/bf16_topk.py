"""The float32 top-k of ``states @ table.T + bias``, found through a bfloat16 product.

Why: batch scoring's cost is the float32 product of every state with every item and the pass over
its scores that picks the top ``k``. Where the CPU has a bf16 matrix unit (Intel AMX), the bf16
product takes a fraction of the float32 one's time and its scores half the memory. Rounding to bf16
moves a score by no more than a bound known per row, so only the items whose bf16 score comes within
that bound of the ``k``-th best can belong to the float32 top ``k``: about 30 of 43k items for
``k`` = 20 on Diginetica. Those are scored again in float32 and ranked. The result is the float32
ranking, values included, bit for bit where the GEMMs agree: the candidates' float32 scores come from
torch's GEMM on the full product's float32 operands, which sums each cell in the same order at the
sizes used here as in the full product's blocks (``RESCORE_ROWS``; tested), and ties keep catalogue
order.

The bound. A state ``x`` (``d`` values, then 1 for the bias) and an item ``p`` (its vector ``w``,
then its bias ``b``) are rounded to bf16 (``x~``, ``p~``), multiplied exactly, summed in float32
and the sum rounded to bf16 (relative error ``u' = u / (1 - u)``, ``u = 2^-8``). The float32 score
sums ``x p`` in float32. So ``|s_bf16 - s_f32| <= e + u' |s_bf16|`` with
``e = |x - x~| max|w| + |x~| max|w - w~| + max|b - b~| + g (|x| max|w| + max|b| + |x~| max|w~| + max|b~|)``
(Cauchy-Schwarz over the state's values; maxima over the items, measured once per table;
``g = 1.01 (d + 1) 2^-24`` bounds a float32 sum of ``d + 1`` products), so ``e`` is one number per
row, computed from the row's own rounding, about half the worst case ``2u |x| max|w|``.

The threshold. Split each row into chunks of ``CHUNK`` items; ``m`` is the ``k``-th largest chunk
maximum of the bf16 scores. The ``k`` chunks with the largest maxima hold ``k`` items scoring at
least ``m`` in bf16, hence at least ``L = m - e - u'|m|`` in float32, so the float32 ``k``-th best
is at least ``L``. An item reaching it needs ``s_bf16 + e + u'|s_bf16| >= L``, that is
``s_bf16 >= theta``, the solution of ``v + u'|v| = L - e``. Only chunks whose maximum reaches
``theta`` are read again.

The chunk maxima are taken over the scores' raw bits as 16-bit integers (a quarter of the time of a
bf16 maximum): for non-negative numbers their order is the numbers' order, so wherever ``theta > 0``
(scores of the best items above zero) a chunk's integer maximum reads as its maximum if that
reaches ``theta`` (``theta`` itself is rounded down to a bf16 pattern: a few more candidates, never
fewer). Rows with ``theta <= 0``, a NaN or an infinite bound make :meth:`Bf16TopK.top_k` answer
``None``, and the caller ranks that block from its float32 scores.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch

from recframe.model.candidates import append_by_row, best_per_row

#: items per chunk of a row whose maximum decides whether the chunk is read again
CHUNK = 64
#: rows, and fewest items, per float32 product of the candidates (each covers the candidates of its
#: rows): products this small could otherwise take a BLAS kernel that sums in another order (a
#: single row or item is a matrix-vector product; OpenBLAS's small-matrix kernels differed below
#: 200 items, torch's GEMM only for one item)
RESCORE_ROWS = 16
RESCORE_COLS = 16
_U = 2.0**-8
_U_OUT = _U / (1 - _U)
_BF16_NEG_INF = torch.tensor(-np.inf, dtype=torch.bfloat16)
_BF16_INF_BITS = 0x7F80  # +inf; greater bits with the sign bit clear are NaN


@cache
def bf16_matmul_fast() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AMX or AVX512-BF16) through oneDNN."""
    try:
        cpu = torch.cpu
        fast = getattr(cpu, "_is_amx_tile_supported", lambda: False)() or \
            getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()  # fmt: skip
        return bool(fast) and bool(torch.backends.mkldnn.is_available())
    except (AttributeError, RuntimeError):
        return False


def _as_float(bits: np.ndarray) -> np.ndarray:
    """bf16 numbers stored as int16 bits, as float32 (exact)."""
    return (bits.astype(np.int32) << 16).view(np.float32)


def _max_norm(columns: np.ndarray) -> float:
    """An upper bound of the largest Euclidean norm of the columns (0 for none): summed in float32,
    then enlarged by that sum's worst rounding."""
    if columns.size == 0:
        return 0.0
    squares = float(np.einsum("ij,ij->j", columns, columns).max())
    return float(np.sqrt(squares * (1 + (len(columns) + 2) * 2.0**-23)))


def _below(target: np.ndarray) -> np.ndarray:
    """The ``v`` with ``v + u'|v| = target`` (``v + u'|v|`` increases with ``v``)."""
    return np.where(target >= 0, target / (1 + _U_OUT), target / (1 - _U_OUT))


class Bf16TopK:
    """Exact float32 top-k over one item table (``[n_items, d]``) and bias, from bf16 scores.

    Built once per weights (the caller rebuilds it when they change). Holds the table as a bf16
    ``[d (+ 1), n_items]`` matrix, the bias as its last row (8.7 MB at 43k items and d = 100),
    besides the caller's float32 table, which it reads for the candidates' float32 scores.
    """

    def __init__(self, packed: np.ndarray, table: np.ndarray, bias: np.ndarray | None) -> None:
        """``packed``: the item scorer's float32 ``[d (+ 1), n_items]`` table (the bias as its last
        row); ``table``: the ``[n_items, d]`` item vectors, ``bias`` the ``[n_items]`` biases or None."""
        n, d = table.shape
        self.n_items, self.d = n, d
        self._rows = table
        self._bias = bias
        self._packed = torch.from_numpy(packed).to(torch.bfloat16)
        rounded = self._packed.float().numpy()  # the items as the bf16 product sees them (exact)
        w, w_bf16 = packed[:d], rounded[:d]
        self._w_max, self._w_bf16_max = _max_norm(w), _max_norm(w_bf16)
        self._w_err_max = _max_norm(w - w_bf16)  # exact in float32: the two differ past bf16's bits
        with_bias = bias is not None and n > 0
        self._b_max = float(np.abs(packed[d]).max()) if with_bias else 0.0
        self._b_bf16_max = float(np.abs(rounded[d]).max()) if with_bias else 0.0
        self._b_err_max = float(np.abs(packed[d] - rounded[d]).max()) if with_bias else 0.0
        self._gamma = 1.01 * (d + 1) * 2.0**-24  # one float32 sum of d + 1 products
        self._flushed = (d + 1) * 2.0**-125  # products below float32's normal range, flushed to zero

    def _bound(self, states: np.ndarray, rounded: np.ndarray) -> np.ndarray:
        """``e`` of each row: how far rounding the operands and the two float32 sums can move a score."""
        x, xr = states.astype(np.float64), rounded.astype(np.float64)
        norm, norm_bf16 = np.sqrt(np.einsum("ij,ij->i", x, x)), np.sqrt(np.einsum("ij,ij->i", xr, xr))
        off = np.sqrt(np.einsum("ij,ij->i", x - xr, x - xr))
        operands = off * self._w_max + norm_bf16 * self._w_err_max + self._b_err_max
        sums = self._gamma * (norm * self._w_max + self._b_max + norm_bf16 * self._w_bf16_max + self._b_bf16_max)
        return (operands + sums + self._flushed) * (1 + 2.0**-30)  # and the float64 arithmetic of this bound

    def eligible(self, k: int) -> bool:
        """Whether a top ``k`` is found here: enough chunks that reading ``k`` of them skips most."""
        return self.n_items // CHUNK > k and 4 * k * CHUNK <= self.n_items

    def top_k(
        self, states: np.ndarray, k: int, scratch: torch.Tensor, masked: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """``(values, indices)`` ``[n, k]`` of the float32 scores of ``states`` (``[n, d]`` float32),
        largest first, ties in catalogue order; ``masked`` ``(rows, items)`` cells score ``-inf``
        (never ranked). ``scratch`` is a bf16 ``[n, n_items]`` buffer the call writes into. ``None``
        where the bound cannot decide (see the module): rank that block from float32 scores.
        """
        n, d = states.shape
        x = torch.empty((n, self._packed.shape[0]), dtype=torch.bfloat16)
        x[:, :d] = torch.from_numpy(states)
        x[:, d:] = 1.0  # the bias input, where the table has a bias row
        torch.mm(x, self._packed, out=scratch)
        if masked is not None and len(masked[0]):
            scratch[torch.from_numpy(masked[0]), torch.from_numpy(masked[1])] = _BF16_NEG_INF
        bits = scratch.view(torch.int16)
        n_chunks = self.n_items // CHUNK
        cut = n_chunks * CHUNK
        maxima = bits[:, :cut].reshape(n, n_chunks, CHUNK).amax(dim=2).numpy()  # as bits
        if (maxima > _BF16_INF_BITS).any():  # a NaN (positive sign bit) hides its chunk's maximum
            return None
        m = _as_float(np.partition(maxima, n_chunks - k, axis=1)[:, n_chunks - k]).astype(np.float64)
        e = self._bound(states, x[:, :d].float().numpy())
        theta = _below(m - _U_OUT * np.abs(m) - 2 * e)
        if not (np.isfinite(theta).all() and (theta > 0).all()):
            return None
        # theta as bits, rounded down: comparing bits then keeps every score >= theta (and a few
        # just below it, which the float32 scores rank out)
        low = (np.nextafter(theta.astype(np.float32), np.float32(0)).view(np.int32) >> 16).astype(np.int16)
        row, chunk = np.nonzero(maxima >= low[:, None])
        raw = bits.numpy()
        picked = raw[:, :cut].reshape(n, n_chunks, CHUNK)[row, chunk]
        at = np.flatnonzero(picked >= low[row][:, None])
        within, off = np.divmod(at, CHUNK)
        row, cols = row[within], chunk[within] * CHUNK + off
        if cut < self.n_items:  # the ragged tail joins the candidates where it reaches theta
            t_row, t_off = np.nonzero(raw[:, cut:] >= low[:, None])
            if len(t_row):
                row, cols = append_by_row(row, t_row, (cols, cut + t_off))
        counts = np.bincount(row, minlength=n)
        if counts.min() < k:
            return None
        return best_per_row(row, cols, self._rescore(states, row, cols), counts, k)

    def _rescore(self, states: np.ndarray, row: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The float32 scores of cells ``(row, cols)`` (sorted by row): torch's GEMM on the float32
        operands of the full product, one per ``RESCORE_ROWS`` rows over the items their cells name
        (at least ``RESCORE_COLS``), all written into one flat buffer."""
        n, d = states.shape
        parts = -(-n // RESCORE_ROWS)
        x = np.zeros((parts * RESCORE_ROWS, d), dtype=np.float32)  # a short last part: zero rows
        x[:n] = states
        part = row // RESCORE_ROWS
        pad = np.arange(min(RESCORE_COLS, self.n_items))
        keys = np.concatenate([part * self.n_items + cols, (np.arange(parts)[:, None] * self.n_items + pad).ravel()])
        unique, where = np.unique(keys, return_inverse=True)
        where = where[: len(row)]
        starts = np.searchsorted(unique, np.arange(parts + 1) * self.n_items)
        table = torch.from_numpy(self._rows[unique % self.n_items])
        flat = np.empty(RESCORE_ROWS * len(unique), dtype=np.float32)
        xt, out = torch.from_numpy(x), torch.from_numpy(flat)
        for p in range(parts):
            a, b = int(starts[p]), int(starts[p + 1])
            torch.mm(xt[p * RESCORE_ROWS : (p + 1) * RESCORE_ROWS], table[a:b].T,
                     out=out[RESCORE_ROWS * a : RESCORE_ROWS * b].view(RESCORE_ROWS, b - a))  # fmt: skip
        width = (starts[1:] - starts[:-1])[part]
        first = starts[:-1][part]
        values = flat[RESCORE_ROWS * first + (row - part * RESCORE_ROWS) * width + (where - first)]
        if self._bias is not None:
            values += self._bias[cols]
        return values
