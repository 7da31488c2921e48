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
"""

from __future__ import annotations

import numpy as np
import torch


class ItemScorer:
    """``scores(states)`` = ``states @ table.T (+ bias)``, through BLAS on CPU inference."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._packed: np.ndarray | None = None

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
        d = table.shape[1]
        x = np.empty((states.shape[0], packed.shape[0]), dtype=np.float32)
        x[:, :d] = states.detach().numpy()
        if bias is not None:
            x[:, d] = 1.0
        n_out = (states.shape[0], packed.shape[1])
        if out is not None and out.device.type == "cpu" and out.dtype == torch.float32 and out.is_contiguous() \
                and tuple(out.shape) == n_out:  # fmt: skip
            np.matmul(x, packed, out=out.numpy())
            return out
        return torch.from_numpy(x @ packed)

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
            packed[:d] = table.detach().numpy().T
            if bias is not None:
                packed[d] = bias.detach().reshape(-1).numpy()
            self._packed, self._key = packed, key
        return self._packed


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
