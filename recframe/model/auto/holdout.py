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


def sample_sessions(sessions: list[np.ndarray], max_targets: int, seed: int) -> list[np.ndarray]:
    """A seeded random subset of ``sessions`` with about ``max_targets`` next-item targets (all if fewer)."""
    total = sum(len(s) - 1 for s in sessions)
    if total <= max_targets:
        return sessions
    rng = np.random.default_rng(seed)
    picked, count = [], 0
    for i in rng.permutation(len(sessions)):
        picked.append(int(i))
        count += len(sessions[i]) - 1
        if count >= max_targets:
            break
    return [sessions[i] for i in sorted(picked)]
