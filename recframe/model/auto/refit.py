"""Refitting the chosen kNN members on train plus validation, in the vocabulary every member shares.

Validation holds the newest sessions, which are the most useful neighbours for tomorrow's traffic,
and a kNN model "trains" by indexing sessions in a second, so once the search has chosen its
parameters the kNN members index train and validation together. GRU4Rec is not retrained: that
would cost its whole budget again, and validation has already decided its epochs.

A blend with GRU4Rec needs one item vocabulary for all members, so its kNN index is built in the
vocabulary of the search (train's items, with counts over train plus validation); validation
events with items that train never saw are left out of it, and those items cannot be recommended.
When the chosen members are all kNN models, the vocabulary is that of train plus validation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recframe.model.knn.base import SessionKNNBase
from recframe.model.knn.index import SessionIndex
from recframe.vocab import ItemVocab


def shared_vocab(vocab: ItemVocab, events: pd.DataFrame) -> ItemVocab:
    """``vocab``'s items in the same order, with counts over ``events`` (train plus validation)."""
    codes = vocab.encode_column(events["item_id"])
    counts = np.bincount(codes[codes >= 0], minlength=len(vocab))
    return ItemVocab(list(vocab.items), counts)


def refit_knn(model: SessionKNNBase, events: pd.DataFrame, vocab: ItemVocab) -> SessionKNNBase:
    """Index ``events`` for ``model`` in ``vocab`` (events with unknown items are dropped)."""
    items = vocab.encode_column(events["item_id"])
    keep = items >= 0
    kept = events[keep]
    sessions = pd.factorize(kept["session_id"], sort=False)[0]
    ts = pd.to_numeric(kept["ts"]).to_numpy(dtype=np.float64)
    model.vocab = vocab
    model.index = SessionIndex.from_codes(sessions, items[keep], ts, len(vocab))
    model._fitted()
    return model


def train_plus_valid(train: pd.DataFrame, valid: pd.DataFrame) -> pd.DataFrame:
    """Both splits as one event frame, sorted by session then time (the event-frame contract)."""
    both = pd.concat([train, valid], ignore_index=True)
    return both.sort_values(["session_id", "ts"], kind="stable").reset_index(drop=True)
