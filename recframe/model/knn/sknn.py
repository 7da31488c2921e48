"""``model=sknn``: S-KNN (Ludewig & Jannach 2018), the plain session-based kNN."""

from __future__ import annotations

from typing import Any

import numpy as np

from recframe import validation as v
from recframe.model.knn.base import SessionKNNBase
from recframe.model.knn.index import Candidates, PrefixBatch


class SKNN(SessionKNNBase):
    """S-KNN: plain session-based kNN; the session is a set, every neighbour votes its similarity.

    ``similarity`` is ``cosine`` (|A and B| / sqrt(|A| |B|)) or ``jaccard`` (|A and B| / |A or B|),
    over the sets of distinct items. session-rec's ``cosine`` misplaces a bracket
    (``li / sqrt(la) * sqrt(lb)``); this is the textbook definition. ``k`` and ``sample_size``
    default to ``auto`` (scaled to the training data, :func:`recframe.model.scaling.knn_defaults`).
    """

    name = "sknn"
    SIMILARITIES = ("cosine", "jaccard")

    def __init__(
        self,
        k: int | str = "auto",
        sample_size: int | str = "auto",
        similarity: str = "cosine",
        tie_break: str = "newest",
    ) -> None:
        super().__init__(k, sample_size, tie_break)
        self.similarity = v.choice("model.similarity", similarity, self.SIMILARITIES)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "similarity": self.similarity}

    def _similarity(self, batch: PrefixBatch, cands: Candidates) -> np.ndarray:
        shared = cands.overlap
        mine = batch.n_distinct[cands.rows].astype(np.float64)
        theirs = self.index.lengths[cands.sessions].astype(np.float64)
        if self.similarity == "jaccard":
            return shared / (mine + theirs - shared)
        return shared / np.sqrt(mine * theirs)
