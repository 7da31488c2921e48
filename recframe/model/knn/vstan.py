"""``model=vstan``: V-STAN (Ludewig et al. 2021), STAN plus V-SKNN's ideas.

V-STAN keeps STAN's three decays (:mod:`recframe.model.knn.stan`) and adds V-SKNN's: the vote of
a neighbour decays with how far back the most recent shared item sits in the prefix
(``exp((1 - step) / lambda_ipw)``), and votes are multiplied by ``1 + lambda_idf * idf(item)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recframe import validation as v
from recframe.model.knn.index import Candidates, PrefixBatch
from recframe.model.knn.stan import STAN, optional_positive


class VSTAN(STAN):
    """V-STAN: STAN plus V-SKNN's decay of votes by prefix position and idf weighting."""

    name = "vstan"
    SIMILARITIES = ("cosine", "vec")

    def __init__(
        self,
        k: int | str = "auto",
        sample_size: int | str = "auto",
        similarity: str = "cosine",
        lambda_spw: float | None = 1.02,
        lambda_snh: float | str | None = 5.0,
        lambda_inh: float | None = 2.05,
        lambda_ipw: float | None = 1.02,
        lambda_idf: float | None = 5.0,
        ts_per_day: float | str = "auto",
        tie_break: str = "newest",
    ) -> None:
        super().__init__(k, sample_size, lambda_spw, lambda_snh, lambda_inh, ts_per_day, tie_break)
        self.similarity = v.choice("model.similarity", similarity, self.SIMILARITIES)
        self.lambda_ipw = optional_positive("model.lambda_ipw", lambda_ipw)
        self.lambda_idf = None if lambda_idf is None else v.number("model.lambda_idf", lambda_idf, 0.0)

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "similarity": self.similarity,
            "lambda_ipw": self.lambda_ipw,
            "lambda_idf": self.lambda_idf,
        }

    def _fitted(self) -> None:
        self._column_factor = 1.0 + self.lambda_idf * self.idf() if self.lambda_idf else None

    def _similarity(self, batch: PrefixBatch, cands: Candidates) -> np.ndarray:
        if self.similarity == "cosine":
            return super()._similarity(batch, cands)
        return self._with_recency(cands.overlap / batch.n_distinct[cands.rows], cands)

    def _neighbour_weight(self, neigh: Candidates, sim: np.ndarray) -> np.ndarray:
        if self.lambda_ipw is None:
            return sim
        return sim * np.exp((1 - neigh.step) / self.lambda_ipw)
