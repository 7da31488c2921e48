"""Scores of every item for a batch of states: ``states @ table.T + bias``, the serving hot spot.

Why a module of its own: on CPU, outside autograd, the product runs through numpy's BLAS with the
item table kept as one contiguous ``[d + 1, n_items]`` matrix whose last row is the bias (so the
bias costs no second pass over the scores). On AMD EPYC CPUs that is faster than ``torch.addmm``
at serving batch sizes, because torch's CPU GEMM takes a slow path there (serving figures:
docs/benchmarks.md). Training, GPUs and other dtypes keep the torch product.

The packed matrix is one more float32 copy of the item table (17 MB for 43k items x 100 dims); the
transposed view of the table itself, without a copy, is slower at every serving batch size.
It is cached per table and rebuilt whenever the weights change (their version
counter moves with every in-place optimiser step), so evaluation between training epochs always
scores the current weights.

Micro-batches of 2 to 128 states (what a serving endpoint scores under load) go through oneDNN
instead, on a copy of the table reordered once for it: the same float32 products, bit for bit, in
20-50 % less time at those sizes, since OpenBLAS repacks the whole table on every call and that
costs as much as the product when there are few rows. One state (a gemv) and evaluation's big
batches stay on numpy, which is faster there; where torch has no oneDNN, numpy does all.

Products written into a caller's buffer (batch scoring's row blocks) take whichever GEMM measured
faster on this machine's first blocks, numpy's OpenBLAS or torch's own: on a 2-core AMD EPYC
OpenBLAS is the faster, on a 2-core Intel Xeon (Sapphire Rapids) torch's took a quarter less time
at 64 to 128 rows (docs/benchmarks.md, Batch scoring). Both are float32 products of the same
packed matrix (bit-identical there for every block of 7 rows or more; single rows can differ in the
last bit).

Batch scoring's blocks may skip the float32 scores altogether: :meth:`ItemScorer.top_k` finds
their top ``k`` through a bf16 product where the CPU has a bf16 matrix unit, scoring in float32
only the items a rounding bound cannot rule out (:mod:`~recframe.model.seq.nets.bf16_topk`).
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter

import numpy as np
import torch

from recframe.model.seq.nets.bf16_topk import Bf16TopK, bf16_matmul_fast
from recframe.timing_trials import FasterOf

# batch sizes scored through oneDNN, and the batch size its table layout is reordered for
ONEDNN_ROWS = (2, 128)
ONEDNN_HINT = 32
#: timed calls of each GEMM before products into a caller's buffer keep to the one with the lower
#: best time per row; the first ``KERNEL_WARMUP`` calls of each (fresh buffers, cold caches) not counted
KERNEL_TRIALS = 10
KERNEL_WARMUP = 3
#: items per tile of the packed table's transposed copy (see ``ItemScorer._pack``)
PACK_ROWS = 512


def _numpy_into(x: np.ndarray, packed: np.ndarray, out: torch.Tensor) -> None:
    np.matmul(x, packed, out=out.numpy())


def _torch_into(x: np.ndarray, packed: np.ndarray, out: torch.Tensor) -> None:
    torch.mm(torch.from_numpy(x), torch.from_numpy(packed), out=out)


#: the GEMMs a product into a caller's buffer may take, by name
BLOCK_KERNELS: dict[str, Callable[[np.ndarray, np.ndarray, torch.Tensor], None]] = {
    "numpy": _numpy_into,
    "torch": _torch_into,
}


class ItemScorer:
    """``scores(states)`` = ``states @ table.T (+ bias)``, through BLAS on CPU inference."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._packed: np.ndarray | None = None
        self._onednn: torch.Tensor | None = None
        self._onednn_ok = _onednn_available()
        self._kernels = FasterOf(list(BLOCK_KERNELS), KERNEL_TRIALS, KERNEL_WARMUP)
        self._bf16: Bf16TopK | None = None

    def __call__(
        self, states: torch.Tensor, table: torch.Tensor, bias: torch.Tensor | None, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The scores; on the BLAS path written into ``out`` when it fits (a caller scoring block after
        block reuses one buffer: a fresh ``[n, n_items]`` result costs page faults on every block)."""
        if not _blas_eligible(states, table, bias):
            if bias is None:
                return states @ table.T
            return torch.addmm(bias, states, table.T)
        packed = self._pack(table, bias)
        n_out = (states.shape[0], packed.shape[1])
        into = out is not None and out.device.type == "cpu" and out.dtype == torch.float32 \
            and out.is_contiguous() and tuple(out.shape) == n_out  # fmt: skip
        if not into and self._onednn_ok and ONEDNN_ROWS[0] <= states.shape[0] <= ONEDNN_ROWS[1]:
            try:
                return self._onednn_scores(states, table, bias)
            except RuntimeError:  # an op this torch build lacks after all: numpy from now on
                self._onednn_ok = False
        d = table.shape[1]
        x = np.empty((states.shape[0], packed.shape[0]), dtype=np.float32)
        x[:, :d] = states.detach().numpy()
        if bias is not None:
            x[:, d] = 1.0
        if into:
            assert out is not None
            self._into(x, packed, out)
            return out
        return torch.from_numpy(x @ packed)

    def _into(self, x: np.ndarray, packed: np.ndarray, out: torch.Tensor) -> None:
        """``x @ packed`` written into ``out`` by the faster GEMM on this machine, or the next on trial."""
        kernel, on_trial = self._kernels.pick()
        t0 = perf_counter()
        BLOCK_KERNELS[kernel](x, packed, out)
        if on_trial:
            self._kernels.record(kernel, (perf_counter() - t0) / max(len(x), 1))

    def top_k(
        self,
        states: torch.Tensor,
        table: torch.Tensor,
        bias: torch.Tensor | None,
        k: int,
        scratch: torch.Tensor,
        masked: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The float32 top ``k`` of ``states @ table.T + bias`` through a bf16 product (``bf16_topk``),
        bit for bit what ranking the float32 scores gives; ``None`` where that path does not apply
        (no bf16 matrix unit, autograd, other devices or dtypes, a small catalogue, or a block the
        bound cannot decide): rank from :meth:`__call__`'s scores then.
        """
        if not (bf16_matmul_fast() and _blas_eligible(states, table, bias)):
            return None
        if tuple(scratch.shape) != (states.shape[0], table.shape[0]) or scratch.dtype != torch.bfloat16:
            return None
        packed = self._pack(table, bias)  # follows the weights' version; a change drops the bf16 table
        top = self._bf16
        if top is None:
            rows = np.ascontiguousarray(table.detach().numpy())
            b = None if bias is None else bias.detach().reshape(-1).numpy()
            top = self._bf16 = Bf16TopK(packed, rows, b)
        if not top.eligible(k):
            return None
        return top.top_k(np.ascontiguousarray(states.detach().numpy()), k, scratch, masked)

    def _onednn_scores(self, states: torch.Tensor, table: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self._onednn is None:  # reset by _pack whenever the weights change
            self._onednn = torch.ops.mkldnn._reorder_linear_weight(table.detach(), ONEDNN_HINT)
        b = None if bias is None else bias.detach().reshape(-1)
        return torch.ops.mkldnn._linear_pointwise(states.detach().contiguous(), self._onednn, b, "none", [], "")

    def _pack(self, table: torch.Tensor, bias: torch.Tensor | None) -> np.ndarray:
        key = (
            table.data_ptr(),
            tuple(table.shape),
            _version(table),
            None if bias is None else (bias.data_ptr(), _version(bias)),
        )
        if self._key != key or self._packed is None:
            d, n = table.shape[1], table.shape[0]
            packed = np.empty((d + (bias is not None), n), dtype=np.float32)
            rows = table.detach().numpy()
            # the transpose in tiles of PACK_ROWS items: one strided copy of the whole table reads
            # it column by column, out of cache (43k x 100: 35-47 ms against 4-7 ms tiled)
            for lo in range(0, n, PACK_ROWS):
                packed[:d, lo : lo + PACK_ROWS] = rows[lo : lo + PACK_ROWS].T
            if bias is not None:
                packed[d] = bias.detach().reshape(-1).numpy()
            self._packed, self._key, self._onednn, self._bf16 = packed, key, None, None
        return self._packed


def _onednn_available() -> bool:
    try:
        return bool(torch.backends.mkldnn.is_available()) and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    except (AttributeError, RuntimeError):
        return False


def _version(t: torch.Tensor) -> int | None:
    """The in-place version counter (tensors made under ``inference_mode`` have none: they cannot
    be changed in place outside it)."""
    try:
        return t._version
    except RuntimeError:
        return None


def _blas_eligible(states: torch.Tensor, table: torch.Tensor, bias: torch.Tensor | None) -> bool:
    tensors = (states, table) if bias is None else (states, table, bias)
    return (
        not torch.is_grad_enabled()
        and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
        and states.dim() == 2
    )
