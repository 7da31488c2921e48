"""The ``served`` block: test metrics under the endpoint's own ranking settings.

The headline metrics follow the published protocol (every item rankable, repeats included), so they
stay comparable with papers. The endpoint ranks differently: with ``exclude_seen`` (the default of
every deployer, :class:`recframe.deployer.predictor.ServingLimits`) it never returns an item already
in the session, so a repeated target can never be a hit and every other item moves up. Deployment
gates must judge what users get, so the testers also rank with the serving settings and gate on that.

Only ``exclude_seen`` changes the ranking; the other serving keys (``max_k``, ``default_k``, the
request limits) bound requests, and NaN scores rank last in both the tester and the predictor.
Masking happens on the score batch the headline ranking already used: one extra ranking, no second
model pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from recframe import validation as v
from recframe.interfaces import ConfigError

#: the serving keys that change which items a request gets, and their endpoint defaults
RANKING_KEYS = ("exclude_seen",)


def serving_settings(deployer_cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ranking-affecting settings of the configured deployer.

    A deployer group without ``exclude_seen`` (``deployer=none``, SageMaker, Seldon) serves with the
    predictor's default, which is also what ``recframe serve`` and ``recframe score`` use later.
    """
    from recframe.deployer.predictor import ServingLimits

    cfg = deployer_cfg or {}
    exclude = cfg.get("exclude_seen", ServingLimits.exclude_seen) if hasattr(cfg, "get") else True
    return {"exclude_seen": v.boolean("deployer.exclude_seen", exclude)}


@dataclass(frozen=True)
class SeenIndex:
    """For every prefix, in :meth:`Model.score_prefixes` order, the items already in it (CSR layout),
    and whether its target repeats one of them (a target the endpoint can never return)."""

    ptr: np.ndarray  # [n_prefixes + 1] offsets into cols
    cols: np.ndarray  # item indices of each prefix
    repeat: np.ndarray  # [n_prefixes] bool

    def batch(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, cols)`` of the seen items of prefixes ``start..stop-1``, rows relative to ``start``."""
        a, b = int(self.ptr[start]), int(self.ptr[stop])
        counts = np.diff(self.ptr[start : stop + 1])
        return np.repeat(np.arange(stop - start, dtype=np.int64), counts), self.cols[a:b]


def seen_index(sessions: list[np.ndarray]) -> SeenIndex:
    """Build the :class:`SeenIndex` of ``sessions`` (prefix ``s[:p]`` for ``p`` in ``1..len(s)-1``)."""
    cols, counts, repeat = [], [], []
    for s in sessions:
        s = np.asarray(s, dtype=np.int64)
        n = len(s)
        if n < 2:
            continue
        p = np.arange(1, n)
        # prefix p holds s[0..p-1]: a lower-triangular gather of the session
        idx = np.concatenate([np.arange(q) for q in p])
        cols.append(s[idx])
        counts.append(p)
        _, first = np.unique(s, return_index=True)
        first_of = dict(zip(np.unique(s).tolist(), first.tolist(), strict=True))
        repeat.append(np.fromiter((first_of[int(x)] < i for i, x in enumerate(s[1:], 1)), bool, n - 1))
    if not cols:
        return SeenIndex(np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0, bool))
    c = np.concatenate(counts)
    return SeenIndex(np.concatenate([[0], np.cumsum(c)]), np.concatenate(cols), np.concatenate(repeat))


def served_block(metrics: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """The ``served`` entry of ``metrics.json``: the settings, then the metrics under them."""
    return {"settings": dict(settings), **metrics}


def gate_view(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """What the gates read: the headline, with the served metrics (and served baseline) on top.

    Metrics the served ranking does not change (behavioural tests, invariants) come from the headline.
    """
    served = metrics.get("served")
    if not isinstance(served, Mapping):
        return dict(metrics)
    return {**metrics, **{k: val for k, val in served.items() if k != "settings"}}


def check_serving(serving: Any) -> dict[str, Any] | None:
    """Validate a tester's ``serving`` settings (None: no served block)."""
    if serving is None:
        return None
    if not hasattr(serving, "get"):
        raise ConfigError("tester.serving", serving, "must be a mapping such as {exclude_seen: true}")
    return {"exclude_seen": v.boolean("tester.serving.exclude_seen", serving.get("exclude_seen", True))}


def gate_dicts(verdicts: list[Any], metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each verdict as a dict, with ``on``: ``served`` when it judged a served metric, else ``headline``."""
    served = metrics.get("served") if isinstance(metrics.get("served"), Mapping) else {}
    return [{**g.to_dict(), "on": "served" if g.gate.metric in served else "headline"} for g in verdicts]
