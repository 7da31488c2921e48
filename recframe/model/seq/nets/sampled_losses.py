"""GRU4Rec's losses over a mini-batch's score matrix ``[B, B + S]``.

Column ``i`` of row ``i`` is the target of row ``i``; the other in-batch columns are the other
lanes' targets (in-batch negatives) and the last ``S`` columns are shared sampled negatives.
Both functions return the *sum* over rows, so the caller chooses the normalisation (the reference
divides by the nominal batch size).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy_logq(scores: torch.Tensor, log_q: torch.Tensor | None = None, logq: float = 0.0) -> torch.Tensor:
    """Softmax cross-entropy of the diagonal, optionally with logQ correction.

    Sampled softmax over popularity-biased negatives over-penalises popular items; subtracting
    ``logq * log(q_j)`` (``q_j`` the probability that column ``j`` was drawn) removes that bias.
    """
    if log_q is not None and logq > 0:
        scores = scores - logq * log_q.unsqueeze(0)
    n = scores.shape[0]
    logp = torch.log_softmax(scores.float(), dim=1)
    return -logp[torch.arange(n, device=scores.device), torch.arange(n, device=scores.device)].sum()


def bpr_max(scores: torch.Tensor, bpreg: float, elu_param: float) -> torch.Tensor:
    """BPR-max (Hidasi & Karatzoglou, 2018) with ELU final activation and score regularisation.

    For each row, negatives are weighted by their softmax (the target column excluded), so the loss
    focuses on the negatives that score highest; ``bpreg`` penalises their squared scores with the
    same weights, which keeps negative scores from drifting up while the target's is pushed down.
    """
    scores = scores.float()
    if elu_param > 0:
        scores = F.elu(scores, elu_param)
    n = scores.shape[0]
    diag = torch.arange(n, device=scores.device)
    target = scores[diag, diag].unsqueeze(1)
    neg = scores.clone()
    neg[diag, diag] = float("-inf")
    weights = torch.softmax(neg, dim=1)  # the target column gets weight 0
    hit = (torch.sigmoid(target - scores) * weights).sum(dim=1)
    reg = (scores.square() * weights).sum(dim=1)
    return (-torch.log(hit + 1e-24) + bpreg * reg).sum()
