"""The item vocabulary: the bridge between SKUs (strings) and the integer indices models score.

It travels inside every model artifact, together with training popularity, so that serving needs
nothing but the artifact to map SKUs in to SKUs out and to answer cold sessions with popular items.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from recframe.events import session_codes


class ItemVocab:
    """Maps SKUs to indices ``0..n-1`` (no padding slot: models that need one use index ``n``)."""

    def __init__(self, items: Sequence[str], counts: Sequence[int] | None = None) -> None:
        self.items = np.asarray([str(i) for i in items], dtype=object)
        self.index = {sku: i for i, sku in enumerate(self.items)}
        if len(self.index) != len(self.items):
            raise ValueError("item vocabulary has duplicate SKUs")
        n = len(self.items)
        self.counts = np.zeros(n, dtype=np.int64) if counts is None else np.asarray(counts, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.items)

    @classmethod
    def from_events(cls, events: pd.DataFrame) -> ItemVocab:
        """Build from training events, most popular first (ties by SKU, so it is deterministic)."""
        vc = events["item_id"].astype(str).value_counts()
        order = sorted(zip(vc.index, vc.to_numpy(), strict=True), key=lambda t: (-t[1], t[0]))
        return cls([sku for sku, _ in order], [int(c) for _, c in order])

    def encode(self, skus: Iterable[Any]) -> tuple[np.ndarray, int]:
        """Indices of the known SKUs, in order, and how many were unknown."""
        idx = [self.index.get(str(s), -1) for s in skus]
        known = np.asarray([i for i in idx if i >= 0], dtype=np.int64)
        return known, len(idx) - len(known)

    def encode_column(self, skus: pd.Series) -> np.ndarray:
        """Vectorised encoding of a column; unknown SKUs become -1."""
        codes = pd.Categorical(skus.astype(str), categories=self.items).codes
        return np.asarray(codes, dtype=np.int64)

    def decode(self, idx: Iterable[int]) -> list[str]:
        return [str(self.items[i]) for i in idx]

    def popularity(self) -> np.ndarray:
        """Training frequency as float scores (the cold-start fallback)."""
        return self.counts.astype(np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {"items": [str(i) for i in self.items], "counts": [int(c) for c in self.counts]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ItemVocab:
        return cls(d["items"], d.get("counts"))


def encode_sessions(events: pd.DataFrame, vocab: ItemVocab, drop_unknown: bool = True) -> list[np.ndarray]:
    """Turn a long-format frame (sorted by session, time) into one index array per session."""
    if events.empty:
        return []
    codes = vocab.encode_column(events["item_id"])
    sids = session_codes(events["session_id"])
    if drop_unknown:
        keep = codes >= 0
        codes, sids = codes[keep], sids[keep]
    if len(codes) == 0:
        return []
    change = np.flatnonzero(sids[1:] != sids[:-1]) + 1
    return np.split(codes, change)
