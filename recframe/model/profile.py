"""The statistics of a training split that decide a model's data-aware defaults.

Published session-based results show that parameters tuned for one data set are wrong for another
(GRU4Rec's per-data-set parameter files, session-rec's per-data-set kNN configurations). What
differs between those data sets is a handful of numbers: how many sessions and items, how long the
sessions are, how often a click repeats an item of its session, and what the ``ts`` column
measures. :class:`DataProfile` computes exactly those, vectorised, so that
:mod:`recframe.model.scaling` can turn them into parameters; ``DataProfile.of`` on a million events
takes well under a second.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recframe.interfaces import DataError

MS_PER_DAY = 86_400_000.0
S_PER_DAY = 86_400.0

# Epoch clocks recframe recognises: units per day and the range of plausible values (1973-2100).
# Each band starts at 1e8 seconds (March 1973) and ends at 4.1e9 seconds (2099) in its own unit;
# the bands are three orders of magnitude apart, so one value falls in at most one of them.
_CLOCKS = (
    (S_PER_DAY, 1e8, 4.1e9),  # epoch seconds
    (MS_PER_DAY, 1e11, 4.1e12),  # epoch milliseconds
    (MS_PER_DAY * 1e3, 1e14, 4.1e15),  # epoch microseconds
    (MS_PER_DAY * 1e6, 1e17, 4.1e18),  # epoch nanoseconds (pandas datetime64[ns] as numbers)
)


@dataclass(frozen=True)
class DataProfile:
    """What a model's defaults depend on, measured on the training events.

    * ``sessions``, ``events``, ``items``: distinct sessions, rows and distinct items;
    * ``mean_length``, ``median_length``: events per session;
    * ``repeat_share``: the share of events whose item already occurred earlier in the same session
      (on e-commerce click data a fifth to a third; it is what makes "remind" matter);
    * ``ts_span``: ``max(ts) - min(ts)`` in the column's own units;
    * ``ts_per_day_guess``: units of ``ts`` per day, or None when ``ts`` is not a clock (see
      :func:`guess_ts_per_day`);
    * ``item_sessions``: how many training sessions contain the item of a typical click (the
      click-weighted mean over items of the number of sessions holding the item). It is the number
      of candidate neighbours one click of a session brings to a session-kNN search, so it says
      how large ``sample_size`` must be before it stops cutting candidates.
    """

    sessions: int
    events: int
    items: int
    mean_length: float
    median_length: float
    repeat_share: float
    ts_span: float
    ts_per_day_guess: float | None
    item_sessions: float = 0.0

    @classmethod
    def of(cls, events: pd.DataFrame) -> DataProfile:
        """Profile long-format events (``session_id``, ``item_id``, ``ts``; sorted by session, then ts).

        Counting uses factorised codes, so the result does not depend on the order of sessions; only
        the in-session steps of :func:`guess_ts_per_day` assume rows sorted by time within a session.
        """
        missing = [c for c in ("session_id", "item_id", "ts") if c not in events.columns]
        if missing:
            raise DataError(f"cannot profile events without the column(s) {', '.join(missing)}")
        if len(events) == 0:
            raise DataError("cannot profile an empty training split: it has no events")
        sess, _ = pd.factorize(events["session_id"], sort=False)
        item, item_uniques = pd.factorize(events["item_id"], sort=False)
        n_sessions = int(sess.max()) + 1
        n_items = len(item_uniques)
        lengths = np.bincount(sess, minlength=n_sessions)
        pairs = np.unique(sess.astype(np.int64) * n_items + item)  # distinct (session, item)
        sessions_per_item = np.bincount(pairs % n_items, minlength=n_items).astype(np.float64)
        ts = _numeric_ts(events["ts"])
        same_session = sess[1:] == sess[:-1]
        return cls(
            sessions=n_sessions,
            events=len(events),
            items=n_items,
            mean_length=float(lengths.mean()),
            median_length=float(np.median(lengths)),
            repeat_share=float(1.0 - len(pairs) / len(events)),
            ts_span=float(np.nanmax(ts) - np.nanmin(ts)) if np.isfinite(ts).any() else 0.0,
            ts_per_day_guess=guess_ts_per_day(ts, np.diff(ts)[same_session]),
            item_sessions=float((sessions_per_item**2).sum() / sessions_per_item.sum()),
        )

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-able dict (for logs, reports and artifacts)."""
        return dataclasses.asdict(self)

    def summary(self) -> str:
        """One line for logs: the statistics the defaults depend on."""
        clock = {S_PER_DAY: "epoch s", MS_PER_DAY: "epoch ms"}.get(self.ts_per_day_guess, "a clock")
        return (
            f"{self.sessions:,} sessions, {self.events:,} events, {self.items:,} items, "
            f"median length {self.median_length:g}, {self.repeat_share:.0%} repeats, "
            f"ts: {clock if self.ts_per_day_guess else 'no clock'}"
        )


def _numeric_ts(ts: pd.Series) -> np.ndarray:
    """The ``ts`` column as float64; datetimes become nanoseconds since the epoch, as the kNN index reads them."""
    if pd.api.types.is_datetime64_any_dtype(ts):
        ts = ts.astype("datetime64[ns]").astype("int64")
    return pd.to_numeric(ts, errors="coerce").to_numpy(dtype=np.float64)


def guess_ts_per_day(ts: np.ndarray, steps: np.ndarray) -> float | None:
    """Units of ``ts`` per day when ``ts`` looks like an epoch clock, else None.

    Two tests, both needed. The median timestamp must fall in the 1973-2100 band of one unit
    (seconds from 1e8, milliseconds from 1e11, microseconds from 1e14, nanoseconds from 1e17; the
    bands do not overlap). And the clicks inside a session must not advance by exactly one unit
    each: an ordinal such as Diginetica's ``session * 100 + position`` moves by 1 per click, whereas
    a clock moves by seconds to minutes between clicks, so the median positive in-session step of a
    clock is more than one unit. Anything else (ordinals, relative times, ``ts`` all equal) is
    None: the unit of a day is unknown, and time-decay parameters must not pretend otherwise.
    """
    finite = ts[np.isfinite(ts)]
    if len(finite) == 0:
        return None
    middle = float(np.median(finite))
    positive = steps[np.isfinite(steps) & (steps > 0)]
    if len(positive) and float(np.median(positive)) <= 1.0:
        return None
    for per_day, low, high in _CLOCKS:
        if low <= middle <= high:
            return per_day
    return None
