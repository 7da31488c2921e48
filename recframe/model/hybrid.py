"""``model=hybrid``: a weighted sum of several models' normalised scores (session-rec's weighted hybrid).

Why: neighbourhood models and neural models are right about different sessions (kNN on sessions
that resemble many past ones, GRU4Rec on long or unusual ones), so a blend of the two often ranks
better than either alone. Each member is a full recframe ``Model`` fitted on the same events; its
scores are put on a common scale per session before weighting, because kNN votes, dot products and
logits live on unrelated scales:

* ``minmax``: ``(s - min) / (max - min)`` per row (0 for a constant row);
* ``max``: ``s / max`` per row (session-rec's choice; for non-negative scores such as kNN votes);
* ``softmax``: a probability distribution per row (for logits or dot products);
* ``none``: the raw scores.

The members are fitted in turn, each with its own checkpoint folder, and saved inside one artifact.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from recframe import validation as V
from recframe.evaluation import scores_as_numpy
from recframe.interfaces import ConfigError, FitContext, Model
from recframe.vocab import ItemVocab

NORMALISATIONS = ("minmax", "max", "softmax", "none")


def normalise(scores: np.ndarray, how: str) -> np.ndarray:
    """Rows of ``scores`` on a common scale (see the module docstring); returns float32."""
    s = np.asarray(scores, dtype=np.float32)
    if how == "none":
        return s
    s = np.where(np.isfinite(s), s, np.nan)
    lo = np.nanmin(s, axis=1, keepdims=True)
    hi = np.nanmax(s, axis=1, keepdims=True)
    if how == "minmax":
        span = hi - lo
        out = np.where(span > 0, (s - lo) / np.where(span > 0, span, 1.0), 0.0)
    elif how == "max":
        out = np.where(hi > 0, s / np.where(hi > 0, hi, 1.0), 0.0)
    else:  # softmax
        e = np.exp(s - hi)
        out = e / np.nansum(e, axis=1, keepdims=True)
    return np.nan_to_num(out, nan=0.0).astype(np.float32, copy=False)


class WeightedHybrid(Model):
    """``sum_m weight_m * normalise_m(member_m.score_next(sessions))`` over named member models."""

    name = "hybrid"

    def __init__(
        self,
        members: Mapping[str, Model],
        weights: Mapping[str, float] | None = None,
        normalize: str | Mapping[str, str] = "minmax",
        seeds: Mapping[str, int] | None = None,
    ) -> None:
        if not isinstance(members, Mapping) or not members:
            raise ConfigError("model.members", members, "must map names to models, e.g. {stan: ..., gru: ...}")
        for key, member in members.items():
            if not isinstance(member, Model):
                raise ConfigError(f"model.members.{key}", type(member).__name__, "must be a recframe model config")
        self.members: dict[str, Model] = dict(members)
        weights = dict(weights) if weights is not None else {k: 1.0 for k in self.members}
        if set(weights) != set(self.members):
            raise ConfigError(
                "model.weights", sorted(weights), f"must give one weight per member: {sorted(self.members)}"
            )
        self.weights = {k: V.number(f"model.weights.{k}", weights[k], 0.0) for k in self.members}
        if not any(self.weights.values()):
            raise ConfigError("model.weights", weights, "needs at least one positive weight")
        per = normalize if isinstance(normalize, Mapping) else {k: normalize for k in self.members}
        self.normalize = {
            k: V.choice(f"model.normalize.{k}", per.get(k, "minmax"), NORMALISATIONS) for k in self.members
        }
        # A member listed here trains with its own seed instead of the run's: two members of the same
        # model with different seeds make a seed ensemble (otherwise they would train identically).
        seeds = dict(seeds or {})
        unknown = sorted(set(seeds) - set(self.members))
        if unknown:
            raise ConfigError("model.seeds", unknown, f"names no member: {sorted(self.members)}")
        self.seeds = {k: V.integer(f"model.seeds.{k}", v, 0) for k, v in seeds.items()}
        self.vocab: ItemVocab | None = None

    def fit(
        self, train: pd.DataFrame, valid: pd.DataFrame | None = None, ctx: FitContext | None = None
    ) -> WeightedHybrid:
        ctx = ctx or FitContext()
        for key, member in self.members.items():
            work = None if ctx.work_dir is None else ctx.work_dir / key
            seed = self.seeds.get(key, ctx.seed)
            member.fit(train, valid, dataclasses.replace(ctx, work_dir=work, seed=seed))
        self._adopt_vocab()
        return self

    def _adopt_vocab(self) -> None:
        vocabs = [m.vocab for m in self.members.values()]
        first = vocabs[0]
        for key, v in zip(self.members, vocabs, strict=True):
            if v is None or list(v.items) != list(first.items):
                raise ValueError(
                    f"hybrid member {key!r} has a different item vocabulary: fit every member on the same events"
                )
        self.vocab = first

    def _active(self) -> list[tuple[str, Model]]:
        return [(key, m) for key, m in self.members.items() if self.weights[key] > 0]

    def _add(self, total: np.ndarray | None, key: str, scores: Any) -> np.ndarray:
        """``total`` plus member ``key``'s scores, normalised and weighted."""
        part = normalise(scores_as_numpy(scores), self.normalize[key]) * np.float32(self.weights[key])
        return part if total is None else total + part

    def score_next(self, sessions: Sequence[np.ndarray]) -> np.ndarray:
        total = None
        for key, member in self._active():
            total = self._add(total, key, member.score_next(sessions))
        return total

    def score_prefixes(self, sessions: Sequence[np.ndarray], batch_size: int = 512):
        """Every member scores the same consecutive group of sessions its own fastest way (GRU4Rec
        in one pass per session, kNN prefix by prefix); the rows line up because every model yields
        targets in session and position order, which is checked."""
        from recframe.model.seq.data import prefix_batches

        for group in prefix_batches(sessions, batch_size):
            part = [sessions[i] for i in group]
            total, targets = None, None
            for key, member in self._active():
                chunks = list(member.score_prefixes(part, batch_size=batch_size))
                t = np.concatenate([np.asarray(tt) for _, tt in chunks])
                if targets is None:
                    targets = t
                elif not np.array_equal(targets, t):
                    raise RuntimeError(f"hybrid member {key!r} scored prefixes in a different order")
                total = self._add(total, key, np.concatenate([scores_as_numpy(c) for c, _ in chunks]))
            yield total, targets

    def item_embeddings(self) -> np.ndarray | None:
        for member in self.members.values():
            emb = member.item_embeddings()
            if emb is not None:
                return emb
        return None

    def get_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        config: dict[str, Any] = {
            "weights": self.weights,
            "normalize": self.normalize,
            "seeds": self.seeds,
            "members": {},
        }
        tensors: dict[str, Any] = {}
        for key, member in self.members.items():
            cfg, ts = member.get_state()
            cls = type(member)
            config["members"][key] = {
                "target": f"{cls.__module__}.{cls.__qualname__}",
                "name": member.name,
                "config": cfg,
            }
            tensors.update({f"{key}/{name}": t for name, t in ts.items()})
        return config, tensors

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, Any], vocab: ItemVocab) -> WeightedHybrid:
        from recframe.artifact import _resolve

        members = {}
        for key, spec in config["members"].items():
            prefix = f"{key}/"
            own = {name[len(prefix) :]: t for name, t in tensors.items() if name.startswith(prefix)}
            member = _resolve(spec["target"]).from_state(spec["config"], own, vocab)
            member.name = spec.get("name", member.name)
            members[key] = member
        model = cls(members, config["weights"], config["normalize"], config.get("seeds"))
        model.vocab = vocab
        return model
