"""``model=vsknn``: V-SKNN (Ludewig & Jannach 2018), session kNN that weighs recent clicks more."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from recframe import validation as v
from recframe.model.knn.base import SessionKNNBase
from recframe.model.knn.index import Candidates, PrefixBatch, vote
from recframe.model.knn.weights import WEIGHTINGS, position_weight, step_decay


class VSKNN(SessionKNNBase):
    """V-SKNN: session kNN where recent clicks of the session matter more.

    * ``weighting``: the weight of the item at position ``i`` of a prefix of length ``n`` in the
      similarity (``div``: i/n, ``quadratic``: (i/n)^2, ``log``: 1/log10(n-i+1.7), ``linear``:
      max(0, 1-0.1(n-i)), ``same``: 1). The similarity is the sum of the weights of the shared items
      divided by the number of distinct items of the prefix.
    * ``weighting_score``: a neighbour's vote decays with the step ``t`` from the end of the prefix
      to the most recent item it shares (``div``: 1/t, ``quadratic``: 1/t^2, ``log``:
      1/log10(t+1.7), ``linear``: max(0, 1-0.1t), ``same``: 1).
    * ``idf_weighting``: a vote for item ``j`` is multiplied by ``1 + idf_weighting * idf(j)``
      (0 turns it off), favouring rare items.

    ``k`` and ``sample_size`` default to ``auto``: scaled to the training data in ``fit``
    (:func:`recframe.model.scaling.knn_defaults`).
    """

    name = "vsknn"

    def __init__(
        self,
        k: int | str = "auto",
        sample_size: int | str = "auto",
        weighting: str = "div",
        weighting_score: str = "div",
        idf_weighting: float = 0.0,
        tie_break: str = "newest",
    ) -> None:
        super().__init__(k, sample_size, tie_break)
        self.weighting = v.choice("model.weighting", weighting, WEIGHTINGS)
        self.weighting_score = v.choice("model.weighting_score", weighting_score, WEIGHTINGS)
        self.idf_weighting = v.number("model.idf_weighting", idf_weighting, 0.0)

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "weighting": self.weighting,
            "weighting_score": self.weighting_score,
            "idf_weighting": self.idf_weighting,
        }

    def _fitted(self) -> None:
        self._column_factor = 1.0 + self.idf_weighting * self.idf() if self.idf_weighting else None

    def _item_weights(self, batch: PrefixBatch) -> np.ndarray:
        return position_weight(self.weighting, batch.last_pos, batch.lengths[batch.rows])

    def _similarity(self, batch: PrefixBatch, cands: Candidates) -> np.ndarray:
        return cands.overlap / batch.n_distinct[cands.rows]

    def _vote(self, batch: PrefixBatch, neigh: Candidates, sim: np.ndarray) -> sp.csr_matrix:
        weight = sim * step_decay(self.weighting_score, neigh.step)
        return vote(self.index, neigh.rows, neigh.sessions, weight, batch.size)
