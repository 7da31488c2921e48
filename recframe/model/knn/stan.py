"""``model=stan``: STAN (Garg et al. 2019), session kNN aware of sequence and time.

STAN adds three exponential decays to session kNN, each switched off by setting its lambda to null
(``k``, ``sample_size`` and ``ts_per_day`` default to ``auto``: scaled to the training data,
:func:`recframe.model.scaling.knn_defaults`, which also gives ``lambda_snh`` for ``auto``):

* ``lambda_spw`` (sequence position weight): the item at position ``i`` of a prefix of length ``n``
  weighs ``exp((i - n) / lambda_spw)`` in a cosine similarity between the weighted prefix and the
  neighbour's item set;
* ``lambda_snh`` (session neighbourhood, in days of ``ts_per_day``): a neighbour that ended ``d`` days before the
  latest training session has its similarity multiplied by ``exp(-d / lambda_snh)``. session-rec
  measures from the time of the current click; that differs by a factor common to all neighbours of
  a prefix, so the ranking is the same and serving needs no clock;
* ``lambda_inh`` (item neighbourhood): inside a neighbour, an item ``m`` positions away from the
  neighbour's most recent item shared with the prefix gets ``exp(-m / lambda_inh)`` of its vote.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from recframe import validation as v
from recframe.model.knn.base import SessionKNNBase
from recframe.model.knn.index import Candidates, PrefixBatch, expand_neighbours


def optional_positive(key: str, value: Any) -> float | None:
    """A lambda: null switches its decay off, anything else must be a positive number."""
    return None if value is None else v.positive(key, value)


class STAN(SessionKNNBase):
    """Sequence and Time Aware Neighbourhood; see the module docstring for the three lambdas."""

    name = "stan"

    def __init__(
        self,
        k: int | str = "auto",
        sample_size: int | str = "auto",
        lambda_spw: float | None = 1.02,
        lambda_snh: float | str | None = 5.0,
        lambda_inh: float | None = 2.05,
        ts_per_day: float | str = "auto",
        tie_break: str = "newest",
    ) -> None:
        super().__init__(k, sample_size, tie_break)
        self.lambda_spw = optional_positive("model.lambda_spw", lambda_spw)
        self.lambda_snh = v.or_auto("model.lambda_snh", lambda_snh, optional_positive)
        self.lambda_inh = optional_positive("model.lambda_inh", lambda_inh)
        self.ts_per_day = v.or_auto("model.ts_per_day", ts_per_day, v.positive)

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "lambda_spw": self.lambda_spw,
            "lambda_snh": self.lambda_snh,
            "lambda_inh": self.lambda_inh,
            "ts_per_day": self.ts_per_day,
        }

    def _item_weights(self, batch: PrefixBatch) -> np.ndarray:
        if self.lambda_spw is None:
            return np.ones(len(batch.rows), dtype=np.float64)
        return np.exp((batch.last_pos - batch.lengths[batch.rows]) / self.lambda_spw)

    def _similarity(self, batch: PrefixBatch, cands: Candidates) -> np.ndarray:
        w = self._item_weights(batch)
        norm = np.sqrt(np.bincount(batch.rows, weights=w * w, minlength=batch.size))
        sim = cands.overlap / (norm[cands.rows] * np.sqrt(self.index.lengths[cands.sessions]))
        return self._with_recency(sim, cands)

    def _with_recency(self, sim: np.ndarray, cands: Candidates) -> np.ndarray:
        """``sim`` times the session-neighbourhood decay, measured from the newest training session."""
        if self.lambda_snh is None:
            return sim
        age = self.index.times[-1] - self.index.times[cands.sessions]
        return sim * np.exp(-age / (self.lambda_snh * self.ts_per_day))

    def _neighbour_weight(self, neigh: Candidates, sim: np.ndarray) -> np.ndarray:
        """Weight of each chosen neighbour's vote before the per-item factors."""
        return sim

    def _vote(self, batch: PrefixBatch, neigh: Candidates, sim: np.ndarray) -> sp.csr_matrix:
        weight = self._neighbour_weight(neigh, sim)
        entry, items, pos = expand_neighbours(self.index, neigh.sessions)
        rows = neigh.rows[entry]
        if self.lambda_inh is not None and len(entry):
            # anchor: the last position in the neighbour of an item the prefix shares with it
            n_items = self.index.n_items
            prefix_keys = batch.rows * n_items + batch.items  # sorted: encode_prefixes orders by row, item
            keys = rows * n_items + items
            found = np.searchsorted(prefix_keys, keys)
            shared = prefix_keys[np.minimum(found, len(prefix_keys) - 1)] == keys
            starts = np.cumsum(self.index.lengths[neigh.sessions]) - self.index.lengths[neigh.sessions]
            anchor = np.maximum.reduceat(np.where(shared, pos, 0), starts)
            vote = weight[entry] * np.exp(-np.abs(pos - anchor[entry]) / self.lambda_inh)
        else:
            vote = weight[entry]
        shape = (batch.size, self.index.n_items)
        return sp.csr_matrix((vote, (rows, items)), shape=shape, dtype=np.float64)
