"""The validation split of ``model=auto``: the one given, or the newest training sessions.

Every choice the search makes (parameters, members, blend weights, epochs) is scored on this split
and nothing else, so the test split cannot leak into the model. When the caller has no validation
split (a benchmark that passes ``valid=None``), the newest sessions of train by start time are held
out: they are what a model deployed tomorrow is asked about, the same reason the data step cuts its
validation split from the end of train.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

log = logging.getLogger("recframe")

# Share of sessions held out: a tenth on small data (where fewer would score too few targets), a
# twentieth on large data, and never more than MAX_SESSIONS (enough targets for a stable MRR@20;
# more would only take sessions away from GRU4Rec's training).
SMALL_DATA_SESSIONS = 50_000
MAX_SESSIONS = 5_000


def holdout_size(n_sessions: int) -> int:
    """How many of ``n_sessions`` training sessions become validation (0 when there are too few)."""
    if n_sessions < 4:
        return 0
    share = 0.1 if n_sessions < SMALL_DATA_SESSIONS else 0.05
    return int(min(MAX_SESSIONS, max(1, round(n_sessions * share)), n_sessions // 2))


def split_validation(
    train: pd.DataFrame, valid: pd.DataFrame | None
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, object]]:
    """``(train, valid, how)``: ``valid`` as given when it has events, else the newest sessions of train."""
    if valid is not None and not valid.empty:
        return train, valid, {"source": "given", "sessions": int(valid["session_id"].nunique())}
    starts = train.groupby("session_id", sort=False, observed=True)["ts"].min()
    order = starts.reset_index().sort_values(["ts", "session_id"], kind="stable")["session_id"].to_numpy()
    n_valid = holdout_size(len(order))
    held = set(order[len(order) - n_valid :]) if n_valid else set()
    in_valid = train["session_id"].isin(held).to_numpy()
    how = {
        "source": "newest training sessions",
        "sessions": int(n_valid),
        "share": round(n_valid / max(len(order), 1), 4),
    }
    log.info("model=auto: no validation split; holding out the newest %d of %d training sessions", n_valid, len(order))
    return train[~in_valid], train[in_valid], how


def sample_indices(targets: np.ndarray, max_targets: int, seed: int) -> np.ndarray | None:
    """Sorted indices of a seeded random subset of sessions (``targets``: each one's next-item
    targets) holding about ``max_targets`` targets: sessions are taken in a random order until the
    count is reached. None when all of them hold no more than that."""
    targets = np.clip(np.asarray(targets, dtype=np.int64), 0, None)
    if int(targets.sum()) <= max_targets:
        return None
    order = np.random.default_rng(seed).permutation(len(targets))
    return np.sort(order[: int(np.searchsorted(np.cumsum(targets[order]), max_targets)) + 1])


def sample_sessions(sessions: list[np.ndarray], max_targets: int, seed: int) -> list[np.ndarray]:
    """A seeded random subset of ``sessions`` with about ``max_targets`` next-item targets (all if fewer)."""
    picked = sample_indices(np.array([len(s) - 1 for s in sessions], dtype=np.int64), max_targets, seed)
    return sessions if picked is None else [sessions[i] for i in picked]
