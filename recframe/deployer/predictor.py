"""The one predictor every deployer serves: SKUs in, SKUs out, over a verified model artifact.

Every serving surface (the local FastAPI endpoint, SageMaker's ``code/inference.py``, the MLServer
runtime) wraps this class, so the contract in ``docs/architecture.md`` is implemented once:

* unknown SKUs are ignored and counted (``"unknown": n`` in each result),
* items already in the session are excluded by default (``exclude_seen``, per request too),
* cold sessions (no known item) get the most popular training items (the vocabulary's counts),
* ``k`` must be an integer in ``[1, max_k]``; a ``k`` above the catalogue size is clamped to it (a
  client cannot know the catalogue size, and "everything, ranked" is the honest answer), and
  excluded items are dropped, so a result may hold fewer than ``k`` items,
* request bodies are validated here (:meth:`Predictor.parse`), so a malformed request raises
  :class:`RequestError` (a 4xx) in every deployer alike, never a server error.

Scoring is batched: :meth:`Predictor.predict_many` calls ``model.score_next`` once for all warm
sessions of a batch and ranks with one ``torch.topk``; :meth:`Predictor.rank` is the same ranking as
arrays, for batch scoring.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np

from recframe.deployer.score_blocks import AHEAD_ROWS, FIRST_ROWS, SCORE_ROWS, StatesAhead, run_blocks
from recframe.interfaces import Model
from recframe.timing_trials import FasterOf

REQUEST_KEYS = ("session", "sessions", "k", "exclude_seen")
#: with ``Predictor.rank(chunk=...)``, a sequence model reads this many chunks of sessions per pass
STATES_PER_CHUNK = 16


class RequestError(ValueError):
    """A client error: the request is malformed or out of bounds. ``status`` is the HTTP 4xx to answer."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class ServingLimits:
    """Bounds on what one request may ask for; they keep a single client from monopolising the server.

    ``max_session_len`` bounds the SKUs of one session and ``max_sessions`` the sessions of one batch
    request: a request beyond either is refused (422) rather than silently truncated, so the client
    learns the limit. ``max_sku_len`` refuses absurdly long SKU strings before they are hashed.
    """

    default_k: int = 10
    max_k: int = 1000
    max_session_len: int = 1000
    max_sessions: int = 1000
    max_sku_len: int = 512
    exclude_seen: bool = True

    def __post_init__(self) -> None:
        from recframe import validation as v

        v.integer("deployer.max_k", self.max_k, 1)
        v.integer("deployer.default_k", self.default_k, 1, self.max_k)
        v.integer("deployer.max_session_len", self.max_session_len, 1)
        v.integer("deployer.max_sessions", self.max_sessions, 1)
        v.integer("deployer.max_sku_len", self.max_sku_len, 1)
        v.boolean("deployer.exclude_seen", self.exclude_seen)


@dataclass
class Query:
    """A validated request: one entry per session, plus whether it came as a batch."""

    sessions: list[list[str]]
    k: int
    exclude_seen: bool
    batch: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Ranked:
    """Rankings as arrays: row ``i`` holds ``lengths[i]`` vocabulary indices and their scores, best first."""

    indices: np.ndarray
    values: np.ndarray
    lengths: np.ndarray


@dataclass(frozen=True)
class _Seen:
    """The items each session excludes, flat: session ``i``'s are ``flat[start[i] : start[i] + count[i]]``.

    Built once per :meth:`Predictor.rank` call, so a block's cells to mask are a few array
    operations instead of Python work per session (which would hold the GIL the parallel blocks share).
    """

    flat: np.ndarray
    start: np.ndarray
    count: np.ndarray

    @classmethod
    def of(cls, prefixes: Sequence[np.ndarray], excl: Sequence[bool]) -> _Seen:
        lengths = np.fromiter((len(p) for p in prefixes), dtype=np.int64, count=len(prefixes))
        flat = np.concatenate([np.asarray(p, dtype=np.int64) for p in prefixes]) if len(prefixes) else lengths
        return cls(flat, np.cumsum(lengths) - lengths, np.where(np.asarray(excl, dtype=bool), lengths, 0))

    def cells(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(row in block, item)`` of every excluded item of the sessions ``rows``."""
        count = self.count[rows]
        total = int(count.sum())
        block_row = np.repeat(np.arange(len(rows)), count)
        first = np.repeat(self.start[rows] - (np.cumsum(count) - count), count)
        return block_row, self.flat[first + np.arange(total)]


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


class Predictor:
    """Serves a fitted :class:`~recframe.interfaces.Model`: validation, encoding, batching, top-k."""

    def __init__(self, model: Model, limits: ServingLimits | None = None) -> None:
        import torch

        if model.vocab is None or len(model.vocab) == 0:
            raise ValueError("cannot serve a model with an empty item vocabulary")
        self.model = model
        self.vocab = model.vocab
        self.limits = limits or ServingLimits()
        self.n_items = len(self.vocab)
        self.model_name = getattr(model, "name", type(model).__name__)
        pop = torch.as_tensor(self.vocab.popularity(), dtype=torch.float32)
        # Cold sessions never depend on the session, so their ranking is computed once.
        n_pop = min(self.n_items, self.limits.max_k)
        pop_scores, pop_idx = torch.topk(pop, n_pop)
        self._pop_idx: np.ndarray = pop_idx.numpy()
        self._pop_values: np.ndarray = pop_scores.numpy()
        self._pop_items: list[str] = self.vocab.items[self._pop_idx].tolist()
        self._index = self.vocab.index
        # batch scoring's blocks: ranked from float32 scores, or by the model's own top-k where it
        # has one (a bf16 product, :mod:`recframe.model.seq.nets.bf16_topk`), whichever is faster here
        self._block_paths = FasterOf(["float32", "bf16"] if hasattr(model, "top_states") else ["float32"])

    @classmethod
    def from_artifact(cls, directory: str | Path, limits: ServingLimits | None = None) -> Predictor:
        """Load an artifact (checksums verified, weights with ``weights_only=True``) and wrap it."""
        from recframe.artifact import load_model

        return cls(load_model(directory), limits)

    # ------------------------------------------------------------------ request validation

    def parse(self, body: Any) -> Query:
        """Validate a decoded JSON body against the serving contract; raise :class:`RequestError`."""
        lim = self.limits
        if not isinstance(body, Mapping):
            raise RequestError(f"request body must be a JSON object, got {_json_type(body)}")
        extra = [str(key)[:40] for key in body if key not in REQUEST_KEYS]
        if extra:
            names = ", ".join(map(repr, extra[:5]))
            raise RequestError(f"unknown field(s) {names}; allowed: {', '.join(REQUEST_KEYS)}")
        has_one, has_many = "session" in body, "sessions" in body
        if has_one == has_many:
            raise RequestError('give exactly one of "session" (a list of SKUs) or "sessions" (a list of lists)')
        k = body.get("k", lim.default_k)
        if not _is_int(k) or not 1 <= k <= lim.max_k:
            raise RequestError(f'"k" must be an integer in [1, {lim.max_k}], got {_json_type(k)}')
        exclude = body.get("exclude_seen", lim.exclude_seen)
        if not isinstance(exclude, bool):
            raise RequestError(f'"exclude_seen" must be true or false, got {_json_type(exclude)}')
        if has_one:
            sessions = [self._session(body["session"], '"session"')]
        else:
            raw = body["sessions"]
            if not isinstance(raw, list):
                raise RequestError(f'"sessions" must be a list of lists of SKUs, got {_json_type(raw)}')
            if not raw:
                raise RequestError('"sessions" must not be empty')
            if len(raw) > lim.max_sessions:
                raise RequestError(f'"sessions" holds {len(raw)} sessions; at most {lim.max_sessions} per request')
            sessions = [self._session(s, f'"sessions"[{i}]') for i, s in enumerate(raw)]
        return Query(sessions, k, exclude, batch=has_many)

    def _session(self, raw: Any, where: str) -> list[str]:
        lim = self.limits
        if not isinstance(raw, list):
            raise RequestError(f"{where} must be a list of SKUs (strings or integers), got {_json_type(raw)}")
        if len(raw) > lim.max_session_len:
            raise RequestError(f"{where} holds {len(raw)} items; at most {lim.max_session_len}")
        out: list[str] = []
        for i, sku in enumerate(raw):
            if isinstance(sku, str):
                if len(sku) > lim.max_sku_len:
                    raise RequestError(f"{where}[{i}] is {len(sku)} characters long; at most {lim.max_sku_len}")
                out.append(sku)
            elif _is_int(sku):
                out.append(str(sku))
            else:
                raise RequestError(f"{where}[{i}] must be a SKU (string or integer), got {_json_type(sku)}")
        return out

    # ------------------------------------------------------------------ prediction

    def encode(self, session: Sequence[str]) -> tuple[np.ndarray, int]:
        """Known SKUs as vocabulary indices (in order) and the number of unknown ones."""
        known = [i for i in map(self._index.get, session) if i is not None]
        return np.asarray(known, dtype=np.int64), len(session) - len(known)

    def predict(self, session: Sequence[str], k: int | None = None, exclude_seen: bool | None = None) -> dict[str, Any]:
        """Recommend for one session (already validated SKUs); see :meth:`predict_many`."""
        return self.predict_many([session], k, exclude_seen)[0]

    def predict_many(
        self,
        sessions: Sequence[Sequence[str]],
        k: int | Sequence[int] | None = None,
        exclude_seen: bool | Sequence[bool] | None = None,
    ) -> list[dict[str, Any]]:
        """Recommend for a batch of sessions with one ``score_next`` call and one ``topk``.

        ``k`` and ``exclude_seen`` may be one value for all sessions or one per session (the
        micro-batching server mixes requests). Each result is ``{"items", "scores", "unknown"}``.
        """
        n = len(sessions)
        if n == 0:
            return []
        encoded = [self.encode(s) for s in sessions]
        ranked = self.rank([idx for idx, _ in encoded], k, exclude_seen)
        items = self.vocab.items
        values = ranked.values.tolist()
        return [
            {
                "items": items[ranked.indices[i, :keep]].tolist(),
                "scores": values[i][:keep],
                "unknown": unknown,
            }
            for i, ((_, unknown), keep) in enumerate(zip(encoded, ranked.lengths.tolist(), strict=True))
        ]

    def rank(
        self,
        prefixes: Sequence[np.ndarray],
        k: int | Sequence[int] | None = None,
        exclude_seen: bool | Sequence[bool] | None = None,
        chunk: int | None = None,
    ) -> Ranked:
        """Rank encoded sessions (known vocabulary indices, in order) as arrays, without per-item Python.

        What :meth:`predict_many` answers, for callers that write the rankings in bulk (batch
        scoring): row ``i`` is the first ``lengths[i]`` entries of ``indices`` and ``values``.
        ``chunk`` bounds the sessions scored at once (the ``[chunk, n_items]`` score matrix); a
        sequence model still reads many sessions per pass (``next_states``), which on CPU costs far
        less per session than small passes, and on CPU scores them in blocks of at most ``chunk``
        and ``score_blocks.SCORE_ROWS`` rows on parallel workers (:meth:`_rank_blocks`).
        """

        n = len(prefixes)
        ks = np.minimum(np.asarray(_per_session(k if k is not None else self.limits.default_k, n), dtype=np.int64),
                        self.n_items)  # fmt: skip
        excl = _per_session(exclude_seen if exclude_seen is not None else self.limits.exclude_seen, n)
        seen = _Seen.of(prefixes, excl)
        top = int(ks.max()) if n else 0
        out = Ranked(np.zeros((n, top), dtype=np.int64), np.zeros((n, top), dtype=np.float32), np.zeros(n, np.int64))
        warm = np.asarray([i for i, idx in enumerate(prefixes) if len(idx)], dtype=np.int64)
        cold = np.asarray([i for i, idx in enumerate(prefixes) if not len(idx)], dtype=np.int64)
        if len(cold):  # the precomputed popularity ranking
            width = min(top, len(self._pop_idx))
            out.indices[cold, :width] = self._pop_idx[:width]
            out.values[cold, :width] = self._pop_values[:width]
            out.lengths[cold] = np.minimum(ks[cold], width)
        step = max(1, int(chunk)) if chunk else max(len(warm), 1)
        two_stage = hasattr(self.model, "next_states") and hasattr(self.model, "score_states")
        group = step * STATES_PER_CHUNK if two_stage else step
        block = min(step, SCORE_ROWS)
        for lo in range(0, len(warm), group):
            rows = warm[lo : lo + group]
            states = None
            if two_stage and chunk and len(rows) > block:
                states = self.model.next_states([prefixes[i] for i in rows[:FIRST_ROWS]])
                if states.device.type == "cpu":
                    # batch scoring: blocks on parallel workers, each into its own reused buffer,
                    # while the rest of the states are computed ahead of them
                    self._rank_blocks(states, rows, prefixes, ks, seen, out, block)
                    continue
                if len(rows) > FIRST_ROWS:
                    import torch

                    rest = self.model.next_states([prefixes[i] for i in rows[FIRST_ROWS:]])
                    states = torch.cat([states, rest])
            elif two_stage:
                states = self.model.next_states([prefixes[i] for i in rows])
            for at in range(0, len(rows), step):
                part = rows[at : at + step]
                if states is not None:
                    scores = self._checked(self.model.score_states(states[at : at + step]), len(part))
                else:
                    scores = self._scores([prefixes[i] for i in part])
                self._rank_scores(scores, part, ks, seen, out)
        return out

    def _rank_blocks(
        self,
        first: Any,
        rows: np.ndarray,
        prefixes: Sequence[np.ndarray],
        ks: np.ndarray,
        seen: _Seen,
        out: Ranked,
        block: int,
    ) -> None:
        """Batch scoring on CPU: product and top-k ``block`` rows at a time, in parallel (see ``score_blocks``).

        ``first`` holds the states of the first sessions of ``rows``; the others are computed ahead
        of the blocks (:class:`~recframe.deployer.score_blocks.StatesAhead`).
        """
        states = StatesAhead(self.model.next_states, [prefixes[i] for i in rows], first, AHEAD_ROWS)
        top_states, paths = getattr(self.model, "top_states", None), self._block_paths

        def work(lo: int, hi: int, buffer: Any) -> None:
            block, x = rows[lo:hi], states.rows(lo, hi)
            path, on_trial = paths.pick()
            t0 = perf_counter()
            if path != "bf16" or not self._rank_top(top_states, x, block, ks, seen, out, buffer):
                scores = self._checked(self.model.score_states(x, out=buffer), hi - lo)
                self._rank_scores(scores, block, ks, seen, out)
            if on_trial:
                paths.record(path, (perf_counter() - t0) / (hi - lo))

        with states:
            run_blocks(len(rows), self.n_items, work, block)

    def _rank_top(
        self, top_states: Any, x: Any, rows: np.ndarray, ks: np.ndarray, seen: _Seen, out: Ranked, buffer: Any
    ) -> bool:
        """Rank sessions ``rows`` (states ``x``) with the model's own top-k (``top_states``): the same
        ranking as from the float32 scores, found through a bf16 product in ``buffer``'s memory.
        False where the model could not (then rank from the scores)."""
        import torch

        n = len(rows)
        scratch = buffer.reshape(-1).view(torch.bfloat16)[: n * self.n_items].view(n, self.n_items)
        at, cols = seen.cells(rows)
        found = top_states(x, int(ks[rows].max()), scratch, (at, cols) if len(at) else None)
        if found is None:
            return False
        self._keep(found[0], found[1], rows, ks, out)
        return True

    def _rank_scores(self, scores: Any, rows: np.ndarray, ks: np.ndarray, seen: _Seen, out: Ranked) -> None:
        """Mask, top-k and trim the score rows of sessions ``rows`` into ``out`` (``scores`` is written to)."""
        import torch

        from recframe.deployer.topk import topk_rows

        with torch.inference_mode():
            at, cols = seen.cells(rows)
            if len(at):  # one scatter for the whole batch: per-row indexing costs more than scoring
                dev = scores.device  # a model moved to a GPU scores there; rank there too
                scores[torch.from_numpy(at).to(dev), torch.from_numpy(cols).to(dev)] = -math.inf
            top = int(ks[rows].max())
            vals, idx = topk_rows(scores, top)
            # NaN ranks last. topk puts a NaN first, so only rows showing one need the repair pass
            # (a pass over every score costs a tenth of the scoring).
            bad = torch.isnan(vals).any(dim=1)
            if bool(bad.any()):
                fix = bad.nonzero().flatten()
                repaired = scores[fix].nan_to_num_(nan=-math.inf, posinf=math.inf, neginf=-math.inf)
                vals[fix], idx[fix] = topk_rows(repaired, top)
        self._keep(vals.cpu().numpy(), idx.cpu().numpy(), rows, ks, out)

    @staticmethod
    def _keep(vals: np.ndarray, idx: np.ndarray, rows: np.ndarray, ks: np.ndarray, out: Ranked) -> None:
        """The top ``[len(rows), top]`` values and items of sessions ``rows``, trimmed to each ``k``."""
        top = vals.shape[1]
        out.indices[rows, :top] = idx
        out.values[rows, :top] = vals
        # excluded (or NaN) items, scored -inf, never reach the client
        within = np.arange(top)[None, :] < ks[rows, None]
        out.lengths[rows] = (within & (vals != -math.inf)).sum(axis=1)

    def _checked(self, scores: Any, n: int) -> Any:
        if scores.shape != (n, self.n_items):
            raise RuntimeError(
                f"{type(self.model).__name__} returned scores of shape {tuple(scores.shape)}, "
                f"expected {(n, self.n_items)}"
            )
        return scores

    def _scores(self, prefixes: list[np.ndarray]) -> Any:
        """``[len(prefixes), n_items]`` float32 scores in a tensor this call owns (masking writes into it)."""
        import torch

        as_tensor = getattr(self.model, "score_next_tensor", None)
        if as_tensor is not None:  # a fresh tensor the model keeps no reference to
            return self._checked(as_tensor(prefixes), len(prefixes))
        # copy: masking must never write into an array the model owns
        raw = self.model.score_next(prefixes)
        if isinstance(raw, torch.Tensor):
            return self._checked(raw.detach().to(torch.float32).clone(), len(prefixes))
        return self._checked(torch.tensor(np.asarray(raw), dtype=torch.float32), len(prefixes))

    def answer(self, body: Any) -> dict[str, Any]:
        """Validate a decoded body and answer it in the contract's shape (single or batch)."""
        q = self.parse(body)
        return self.shape(q, self.predict_many(q.sessions, q.k, q.exclude_seen))

    @staticmethod
    def shape(query: Query, results: list[dict[str, Any]]) -> dict[str, Any]:
        """The response body: the single result itself, or ``{"results": [...]}`` for a batch."""
        return {"results": results} if query.batch else results[0]

    def example_session(self, n: int = 3) -> list[str]:
        """A session of known SKUs (the most popular ones), for smoke tests and docs."""
        return self._pop_items[: min(n, len(self._pop_items))]


def _per_session(value: Any, n: int) -> list[Any]:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"got {len(value)} per-session values for {n} sessions")
        return list(value)
    return [value] * n


def _json_type(x: Any) -> str:
    """A short, safe description of a JSON value for error messages (never echoes big payloads)."""
    if x is None:
        return "null"
    if isinstance(x, bool):
        return "a boolean"
    if isinstance(x, int) and x.bit_length() > 64:
        return "a very large number"  # repr of a huge int can itself raise (int_max_str_digits)
    if isinstance(x, (int, float)):
        text = repr(x)
        return f"the number {text[:30]}" if len(text) <= 30 else "a very large number"
    if isinstance(x, str):
        return "a string"
    if isinstance(x, list):
        return "a list"
    if isinstance(x, Mapping):
        return "an object"
    return type(x).__name__
