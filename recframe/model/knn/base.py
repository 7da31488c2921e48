"""What the session-kNN models share: fitting, the batched neighbour search, artifacts.

For the next item of a session these models find training sessions that share items with it (the
neighbours), keep the ``k`` most similar among the ``sample_size`` most recent candidates, and score
every item by the similarity-weighted votes of the neighbours containing it. Items already in the
session stay rankable (session-rec's ``remind=True``): on e-commerce data a fifth of the next clicks
repeat one.

The search runs vectorised over sparse matrices (:mod:`recframe.model.knn.index`). Fitting only
indexes the training sessions, so it takes seconds; all the work happens when scoring.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recframe import validation as v
from recframe.interfaces import DataError, FitContext, Model
from recframe.model.knn.index import (
    Candidates,
    PrefixBatch,
    SessionIndex,
    densify,
    encode_prefixes,
    find_candidates,
    top_k,
    vote,
)
from recframe.model.profile import DataProfile
from recframe.model.scaling import describe, knn_defaults
from recframe.vocab import ItemVocab

log = logging.getLogger("recframe")

TIE_BREAKS = ("newest", "oldest")


class SessionKNNBase(Model):
    """What every session-kNN model shares: fitting the index, the batched search, artifacts.

    Subclasses say how a prefix weighs its items (:meth:`_item_weights`), how similar a candidate is
    (:meth:`_similarity`) and how the chosen neighbours vote (:meth:`_vote`).
    """

    name = "knn"

    def __init__(self, k: int | str, sample_size: int | str, tie_break: str) -> None:
        self.k = v.or_auto("model.k", k, v.integer, 1)
        self.sample_size = v.or_auto("model.sample_size", sample_size, v.integer, 0)
        self.tie_break = v.choice("model.tie_break", tie_break, TIE_BREAKS)
        self.vocab: ItemVocab | None = None
        self.index: SessionIndex | None = None
        self._column_factor: np.ndarray | None = None  # per-item vote multiplier (idf), set in _fitted
        #: the keys that were ``auto`` and the values ``fit`` scaled them to (empty when all were given)
        self.scaled_params: dict[str, Any] = {}
        self.data_profile: dict[str, Any] | None = None

    # ---- what subclasses define -------------------------------------------------------------

    def params(self) -> dict[str, Any]:
        """The constructor arguments, as the artifact stores them."""
        return {"k": self.k, "sample_size": self.sample_size, "tie_break": self.tie_break}

    def _item_weights(self, batch: PrefixBatch) -> np.ndarray:
        """Weight of each (prefix, item) pair in the similarity; 1 unless the model is position-aware."""
        return np.ones(len(batch.rows), dtype=np.float64)

    def _similarity(self, batch: PrefixBatch, cands: Candidates) -> np.ndarray:
        raise NotImplementedError

    def _vote(self, batch: PrefixBatch, neigh: Candidates, sim: np.ndarray) -> sp.csr_matrix:
        """Sparse float64 scores from the chosen neighbours; by default each votes its similarity for its items."""
        return vote(self.index, neigh.rows, neigh.sessions, sim, batch.size)

    # ---- the Model contract -----------------------------------------------------------------

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None, ctx: FitContext | None = None) -> Model:
        """Index the training sessions; there is nothing to learn beyond that.

        Keys left at ``auto`` are scaled to the training split first (:mod:`recframe.model.scaling`).
        """
        if train is None or len(train) == 0:
            raise DataError(f"{self.name}: the training split is empty")
        self._resolve_auto(train)
        self.vocab = ItemVocab.from_events(train)
        items = self.vocab.encode_column(train["item_id"])
        sessions = pd.factorize(train["session_id"], sort=False)[0]
        ts = pd.to_numeric(train["ts"]).to_numpy(dtype=np.float64)
        self.index = SessionIndex.from_codes(sessions, items, ts, len(self.vocab))
        self._fitted()
        return self

    def _resolve_auto(self, train: pd.DataFrame) -> None:
        """Replace every ``auto`` parameter by :func:`~recframe.model.scaling.knn_defaults` for ``train``."""
        auto = [key for key, value in self.params().items() if value == v.AUTO]
        if not auto:
            return
        profile = DataProfile.of(train)
        defaults = knn_defaults(self.name, profile)
        for key in auto:
            setattr(self, key, defaults[key])
        self.scaled_params = {key: defaults[key] for key in auto}
        self.data_profile = profile.to_dict()
        log.info("%s: %s scaled to the data (%s)", self.name, describe(self.scaled_params), profile.summary())

    def _fitted(self) -> None:
        """Hook run after fit and after loading (derived per-item arrays)."""

    def idf(self) -> np.ndarray:
        """session-rec's inverse document frequency: log(#training sessions / #events of the item)."""
        counts = np.maximum(self.vocab.counts.astype(np.float64), 1.0)
        return np.log(self.index.n_sessions / counts)

    def score_next(self, sessions: Sequence[np.ndarray]) -> np.ndarray:
        if self.index is None:
            raise DataError(f"{self.name}: call fit() before scoring")
        batch = encode_prefixes(sessions)
        if len(batch.items) and (batch.items.min() < 0 or batch.items.max() >= self.index.n_items):
            raise DataError(f"{self.name}: session item indices must lie in [0, {self.index.n_items})")
        if len(batch.rows) == 0:
            out = np.zeros((batch.size, self.index.n_items), dtype=np.float32)
        else:
            weights = self._item_weights(batch)
            cands = find_candidates(self.index, batch, weights, self.sample_size)
            sim = self._similarity(batch, cands)
            positive = np.flatnonzero(sim > 0)  # session-rec drops zero-similarity sessions before the cut
            cands, sim = cands.take(positive), sim[positive]
            chosen = top_k(cands, sim, self.k, batch.size, self.tie_break == "newest")
            out = densify(self._vote(batch, cands.take(chosen), sim[chosen]), self._column_factor)
        cold = batch.lengths == 0
        if cold.any():  # no known item, so no neighbour: fall back to popularity
            out[cold] = self.vocab.popularity().astype(np.float32)
        return out

    def score_next_tensor(self, sessions: Sequence[np.ndarray]) -> Any:
        """:meth:`score_next` as a float32 tensor over the same memory: the array is made fresh for
        every call and the model keeps no reference to it, so the predictor ranks it without a copy."""
        import torch

        return torch.from_numpy(self.score_next(sessions))

    def get_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        if self.index is None:
            raise DataError(f"{self.name}: cannot save a model that has not been fitted")
        config = {"params": self.params(), "n_sessions": int(self.index.n_sessions)}
        if self.scaled_params:
            config["scaled_params"] = self.scaled_params
            config["data_profile"] = self.data_profile
        return config, self.index.state()

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, Any], vocab: ItemVocab) -> Model:
        model = cls(**config["params"])
        model.scaled_params = dict(config.get("scaled_params") or {})
        model.data_profile = config.get("data_profile")
        model.vocab = vocab
        model.index = SessionIndex.from_state(tensors, len(vocab))
        model._fitted()
        return model
