"""Adagrad with momentum that updates only the rows a step touched (GRU4Rec's optimiser).

Why not ``torch.optim.Adagrad``: with sparse item embeddings only a few thousand of tens of
thousands of rows get a gradient each step. Adagrad's accumulator and the momentum buffer must then
change only for those rows (an untouched row keeps its velocity instead of decaying), which is what
the reference GRU4Rec does, and a dense update over the whole catalogue every step would cost more
than the forward pass. Dense parameters (the GRU weights) get the ordinary Adagrad-with-momentum
update. The update is ``acc += g**2; v = momentum * v - lr * g / sqrt(acc + eps); p += v``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch


class IndexedAdagradMomentum(torch.optim.Optimizer):
    """Adagrad + momentum; sparse gradients update only their rows (see module docstring)."""

    def __init__(
        self, params: Iterable[torch.nn.Parameter], lr: float = 0.05, momentum: float = 0.0, eps: float = 1e-6
    ) -> None:
        if lr <= 0:
            raise ValueError(f"learning rate must be > 0, got {lr}")
        if momentum < 0:
            raise ValueError(f"momentum must be >= 0, got {momentum}")
        super().__init__(params, {"lr": lr, "momentum": momentum, "eps": eps})

    def _state_for(self, p: torch.Tensor, momentum: float) -> dict[str, torch.Tensor]:
        state = self.state[p]
        if "acc" not in state:
            state["acc"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if momentum > 0:
                state["mom"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum, eps = group["lr"], group["momentum"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self._state_for(p, momentum)
                grad = p.grad
                if grad.is_sparse:
                    # duplicates must be summed first: the update is non-linear in the gradient
                    grad = grad.coalesce()
                    rows, values = grad.indices()[0], grad.values().to(p.dtype)
                    acc = state["acc"].index_select(0, rows).addcmul_(values, values)
                    state["acc"].index_copy_(0, rows, acc)
                    step = values / acc.add_(eps).sqrt_()
                    if momentum > 0:
                        mom = state["mom"].index_select(0, rows).mul_(momentum).sub_(step, alpha=lr)
                        state["mom"].index_copy_(0, rows, mom)
                        p.index_add_(0, rows, mom)
                    else:
                        p.index_add_(0, rows, step, alpha=-lr)
                else:
                    grad = grad.to(p.dtype)
                    state["acc"].addcmul_(grad, grad)
                    denom = state["acc"].add(eps).sqrt_()
                    if momentum > 0:
                        state["mom"].mul_(momentum).addcdiv_(grad, denom, value=-lr)
                        p.add_(state["mom"])
                    else:
                        p.addcdiv_(grad, denom, value=-lr)
        return loss


def clip_grad_norm_mixed(params: Iterable[torch.nn.Parameter], max_norm: float) -> float:
    """Clip the global gradient norm over dense and sparse gradients alike.

    ``torch.nn.utils.clip_grad_norm_`` cannot take sparse gradients, so this coalesces them (in
    place of the parameter's gradient) and scales their values; returns the norm before clipping.
    """
    with_grad = [p for p in params if p.grad is not None]
    if not with_grad:
        return 0.0
    sq = []
    for p in with_grad:
        if p.grad.is_sparse:
            p.grad = p.grad.coalesce()
            sq.append(p.grad.values().float().pow(2).sum())
        else:
            sq.append(p.grad.float().pow(2).sum())
    total = torch.stack(sq).sum().sqrt()
    scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
    with torch.no_grad():
        for p in with_grad:
            target = p.grad.values() if p.grad.is_sparse else p.grad
            target.mul_(scale.to(target.dtype))
    return float(total)
