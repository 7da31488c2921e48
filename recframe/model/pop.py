"""Popularity: the baseline every other model must beat, and the cold-start fallback."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from recframe.interfaces import FitContext, Model
from recframe.vocab import ItemVocab


class PopModel(Model):
    """Recommends the items most frequent in training, whatever the session."""

    name = "pop"

    def __init__(self) -> None:
        self.vocab: ItemVocab | None = None

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame | None = None, ctx: FitContext | None = None) -> PopModel:
        self.vocab = ItemVocab.from_events(train)
        return self

    def score_next(self, sessions: Sequence[np.ndarray]) -> np.ndarray:
        pop = self.vocab.popularity().astype(np.float32)
        return np.repeat(pop[None, :], len(sessions), axis=0)

    def get_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {}, {}

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, Any], vocab: ItemVocab) -> PopModel:
        m = cls()
        m.vocab = vocab
        return m
