"""A seeded generator of raw shopping events in the Coveo SIGIR eCom 2021 ``browsing_train.csv`` schema.

Why synthetic data: the default pipeline must run on a fresh machine with no account and no
download, and its first figures must look like those of real data, so that a user can trust the
rest. The defaults are calibrated on the statistics of three public session data sets, measured on
their files (Diginetica train, a 100k-event YooChoose sample, the head of REES46 2019-10; docs/data.md):

* **catalogue and popularity**: 10,000 items over 35,000 sessions give about 13 events per item
  (Diginetica 21, YooChoose 24: fewer, to keep the default run to about a minute on 2 cores);
  log-normal item popularity (sigma 1.2) puts 11 % of the events on the top 1 % of items and 41 %
  on the top 10 % (Diginetica 13 % / 46 %, YooChoose 17 % / 59 %), so the 20 most popular items
  cover about 4 % of the targets, in the range of popularity's HR@20 on real data (0.01-0.12,
  shrinking as the catalogue grows);
* **session lengths**: product views per session are ``ceil(lognormal(0.55, 1.0))``, capped at 50:
  27 % of sessions have one event, and those with >= 2 have mean 4.7, 33 % of length 2, p99 23
  (real: mean 3.9-5.1, 28-43 % of length 2, p99 18-24);
* **repeat clicks**: reloads, returns to an earlier item and cart adds make 28 % of the next-item
  targets an item already in the session, 18 % the previous one (Diginetica 20 % / 9 %, YooChoose
  36 % / 26 %, REES46 40 % / 32 %);
* **item-to-item structure**: a third of the steps follow one of the current item's 5 successors
  (same category, weights decaying by 0.7), a quarter jump to a popular item of the current
  category, a quarter to any item by global popularity (the unpredictable clicks that cap every
  model). kNN and GRU learn the first two partly: on the default run both reach HR@20 about 0.5
  against 0.04 for popularity, the ranking seen on Diginetica (V-SKNN 0.49-0.51, GRU 0.44-0.54,
  popularity 0.01).

On top of that it emits the noise a real clickstream has: ``pageview`` rows with no SKU, ``add`` /
``purchase`` / ``remove`` product actions, log-normal dwell times below the 30-minute inactivity gap
that defines a session, sessions spread over several weeks with a daily rhythm.

Everything is vectorised over sessions (one numpy step per position), so 10M events take a few
seconds. The output is a pair of :class:`pyarrow.Table` (events and a ``sku_to_content``-like
catalogue) that DuckDB scans without copying.
"""

from __future__ import annotations

import binascii
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

#: Columns of Coveo's ``browsing_train.csv``, in file order.
BROWSING_COLUMNS = (
    "session_id_hash",
    "event_type",
    "product_action",
    "product_sku_hash",
    "server_timestamp_epoch_ms",
    "hashed_url",
)
#: Columns of the catalogue (a subset of Coveo's ``sku_to_content.csv``).
CATALOGUE_COLUMNS = ("product_sku_hash", "category_hash", "price_bucket")

#: Bumped whenever equal arguments start giving other events: part of the load's fingerprint, so a
#: warehouse that holds an older generator's events reloads instead of reusing them.
GENERATOR_VERSION = 2
#: 2019-02-01 00:00 UTC: the Coveo data were collected in early 2019.
DEFAULT_START_MS = 1_548_979_200_000
SESSION_GAP_MS = 30 * 60 * 1000
_DAY_MS = 86_400_000

# Action codes used internally; order matters for the sort inside a timestamp (view before add).
_PAGEVIEW, _DETAIL, _ADD, _REMOVE, _PURCHASE = 0, 1, 2, 3, 4
_ACTION_NAMES = np.array(["", "detail", "add", "remove", "purchase"], dtype=object)


@dataclass(frozen=True)
class SyntheticEvents:
    """Generated raw data: ``events`` in the browsing schema and its ``catalogue``."""

    events: pa.Table
    catalogue: pa.Table
    n_sessions: int


def _hex_ids(rng: np.random.Generator, n: int, n_bytes: int = 32) -> np.ndarray:
    """``n`` random lowercase hex strings of ``2 * n_bytes`` characters, as a fixed-width bytes array.

    One ``hexlify`` over a single buffer is far faster than formatting ids one by one.
    """
    raw = rng.bytes(n * n_bytes)
    return np.frombuffer(binascii.hexlify(raw), dtype=f"S{2 * n_bytes}")


def _dict(indices: np.ndarray, dictionary: np.ndarray) -> pa.DictionaryArray:
    """A dictionary-encoded string column from int indices into a bytes/str dictionary."""
    return pa.DictionaryArray.from_arrays(pa.array(indices.astype(np.int32)), pa.array(dictionary).cast(pa.string()))


def _zipf_weights(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Power-law weights over ``n`` ranks, assigned to a random permutation (rank != id)."""
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    return rng.permutation(w)


def _sample_from_cdf(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF sampling: index of the first ``cdf`` entry >= ``u`` (``cdf`` normalised to 1)."""
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)


def generate_events(
    n_sessions: int = 35_000,
    n_items: int = 10_000,
    n_days: int = 28,
    seed: int = 42,
    n_categories: int | None = None,
    successors: int = 5,
    successor_decay: float = 0.7,
    follow_prob: float = 0.32,
    repeat_prob: float = 0.02,
    revisit_prob: float = 0.10,
    stay_in_category: float = 0.5,
    length_mu: float = 0.55,
    length_sigma: float = 1.0,
    max_length: int = 50,
    pageview_prob: float = 0.3,
    add_prob: float = 0.08,
    purchase_prob: float = 0.4,
    remove_prob: float = 0.05,
    popularity_sigma: float = 1.2,
    start_ms: int = DEFAULT_START_MS,
) -> SyntheticEvents:
    """Generate ``n_sessions`` shopping sessions over ``n_items`` SKUs and ``n_days`` days.

    Args:
        n_sessions: sessions to emit; each has >= 1 product view.
        n_items: catalogue size.
        n_days: days the session starts are spread over (with a daily rhythm).
        seed: every random choice derives from it, so equal arguments give identical tables.
        n_categories: number of categories (default ``n_items // 40``, at least 2).
        successors: likely successors per item (the learnable sequential signal).
        successor_decay: weight ratio of successor ``k + 1`` to successor ``k``.
        follow_prob: probability that the next view is one of the current item's successors.
        repeat_prob: probability that the next view is the current item again (a reload).
        revisit_prob: probability that the next view goes back to an earlier item of the session.
        stay_in_category: otherwise, probability to jump to a popular item of the same category; the
            rest are jumps to any item by global popularity (the unpredictable clicks).
        length_mu, length_sigma: product views per session are ``ceil(lognormal(mu, sigma))``.
        max_length: cap on product views per session.
        pageview_prob: probability of a non-product ``pageview`` row before each view.
        add_prob, purchase_prob, remove_prob: cart behaviour (add after a view; purchase of the last
            added item at the end of a session that added; remove right after an add).
        popularity_sigma: spread of the log-normal item popularity weights.
        start_ms: epoch ms of the first day.
    """
    if n_sessions < 1 or n_items < 2 or n_days < 1:
        raise ValueError("need n_sessions >= 1, n_items >= 2, n_days >= 1")
    rng = np.random.default_rng(seed)
    n_cat = max(2, n_categories if n_categories is not None else n_items // 40)
    n_cat = min(n_cat, n_items)

    # ---- catalogue: category per item, popularity inside the category, successors ----------------
    category = rng.permutation(np.arange(n_items) % n_cat)
    item_weight = rng.lognormal(0.0, popularity_sigma, size=n_items)
    members = [np.flatnonzero(category == c) for c in range(n_cat)]
    member_cdfs = []
    for m in members:
        w = item_weight[m]
        member_cdfs.append(np.cumsum(w) / w.sum())
    # All categories' CDFs in one sorted array, shifted by the category number (values in (c, c+1]):
    # ``searchsorted(cat_keys, c + u)`` then samples a popularity-weighted member of category ``c`` for
    # a whole vector of (c, u) pairs at once, with no Python loop over categories.
    cat_items = np.concatenate(members)
    cat_keys = np.concatenate([c + cdf for c, cdf in enumerate(member_cdfs)])
    cat_keys[np.cumsum([len(m) for m in members]) - 1] = np.arange(1, n_cat + 1)  # exact upper ends

    def in_category(cats: np.ndarray, u: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(cat_keys, cats + np.minimum(u, 1 - 1e-12), side="right")
        return cat_items[np.minimum(pos, len(cat_items) - 1)]

    global_cdf = np.cumsum(item_weight) / item_weight.sum()
    # successor table [n_items, successors]: items of the same category, never the item itself, drawn
    # with a flattened (square-root) popularity so that successors are not simply the bestsellers
    succ = np.empty((n_items, successors), dtype=np.int64)
    for m in members:
        if len(m) == 1:
            succ[m] = _sample_from_cdf(global_cdf, rng.random((1, successors)))
            continue
        flat = np.sqrt(item_weight[m])
        draws = m[_sample_from_cdf(np.cumsum(flat) / flat.sum(), rng.random((len(m), successors)))]
        same = draws == m[:, None]
        # replace self-loops with a uniformly chosen other member (a shift keeps it != self)
        shift = rng.integers(1, len(m), size=same.sum())
        pos = np.searchsorted(m, np.broadcast_to(m[:, None], draws.shape)[same])
        draws[same] = m[(pos + shift) % len(m)]
        succ[m] = draws
    # successor choice probabilities decay geometrically
    succ_w = successor_decay ** np.arange(successors, dtype=np.float64)
    succ_cdf = np.cumsum(succ_w) / succ_w.sum()

    # ---- session skeleton: length, start time --------------------------------------------------
    lengths = np.clip(np.ceil(rng.lognormal(length_mu, length_sigma, size=n_sessions)), 1, max_length)
    lengths = lengths.astype(np.int64)
    # starts: uniform day, hour from a daily rhythm peaking in the evening
    hour_w = 1.0 + np.sin((np.arange(24) - 14) / 24 * 2 * np.pi) * 0.6
    hour_cdf = np.cumsum(hour_w) / hour_w.sum()
    day = rng.integers(0, n_days, size=n_sessions)
    hour = _sample_from_cdf(hour_cdf, rng.random(n_sessions))
    start = start_ms + day * _DAY_MS + hour * 3_600_000 + rng.integers(0, 3_600_000, size=n_sessions)

    # ---- product views: one vectorised step per position -------------------------------------------
    total_views = int(lengths.sum())
    first_cat = _sample_from_cdf(
        np.cumsum(np.bincount(category, weights=item_weight, minlength=n_cat)) / item_weight.sum(),
        rng.random(n_sessions),
    )
    current = in_category(first_cat, rng.random(n_sessions))
    # positions are written session-major: offset[s] + t
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    view_item = np.empty(total_views, dtype=np.int64)
    view_item[offsets] = current
    order = np.argsort(-lengths, kind="stable")  # sessions still active at step t are a prefix of this
    sorted_len = lengths[order]
    # cumulative thresholds of the step kinds: reload, revisit, follow a successor, jump
    cut_repeat = repeat_prob
    cut_revisit = cut_repeat + revisit_prob
    cut_follow = cut_revisit + follow_prob
    for t in range(1, int(lengths.max())):
        n_active = int(np.searchsorted(-sorted_len, -t, side="left"))  # lengths > t
        act = order[:n_active]
        cur = current[act]
        u = rng.random(n_active)
        nxt = cur.copy()  # u < cut_repeat: the same item again
        back = (u >= cut_repeat) & (u < cut_revisit)
        if back.any():
            earlier = (rng.random(int(back.sum())) * t).astype(np.int64)
            nxt[back] = view_item[offsets[act[back]] + earlier]
        follow = (u >= cut_revisit) & (u < cut_follow)
        nxt[follow] = succ[cur[follow], _sample_from_cdf(succ_cdf, rng.random(int(follow.sum())))]
        jump = u >= cut_follow
        if jump.any():
            j_idx = np.flatnonzero(jump)
            in_cat = rng.random(len(j_idx)) < stay_in_category
            # jumps inside the category: popularity-weighted member of the current category
            cats = category[cur[j_idx]]
            uu = rng.random(len(j_idx))
            nxt[j_idx] = np.where(in_cat, in_category(cats, uu), _sample_from_cdf(global_cdf, uu))
        current[act] = nxt
        view_item[offsets[act] + t] = nxt

    view_session = np.repeat(np.arange(n_sessions, dtype=np.int64), lengths)
    # dwell times: log-normal, median ~25 s, always below the inactivity gap
    dwell = np.minimum(rng.lognormal(np.log(25_000), 1.0, size=total_views), SESSION_GAP_MS // 2).astype(np.int64)
    first = np.zeros(total_views, dtype=bool)
    first[offsets] = True
    dwell[first] = 0
    csum = np.cumsum(dwell)
    view_ts = start[view_session] + csum - np.repeat(csum[offsets], lengths)

    # ---- cart actions ------------------------------------------------------------------------------
    is_add = rng.random(total_views) < add_prob
    add_idx = np.flatnonzero(is_add)
    add_ts = view_ts[add_idx] + rng.integers(1_000, 20_000, size=len(add_idx))
    is_remove = rng.random(len(add_idx)) < remove_prob
    rem_idx = add_idx[is_remove]
    rem_ts = add_ts[is_remove] + rng.integers(1_000, 30_000, size=len(rem_idx))
    # purchase: the last add of a session, with probability purchase_prob, after the session's last event
    add_sess = view_session[add_idx]
    last_add = np.flatnonzero(np.r_[add_sess[1:] != add_sess[:-1], True]) if len(add_idx) else add_idx
    buy = last_add[rng.random(len(last_add)) < purchase_prob]
    buy_view = add_idx[buy]
    last_view_of_session = offsets + lengths - 1
    buy_ts = view_ts[last_view_of_session[view_session[buy_view]]] + rng.integers(30_000, 300_000, size=len(buy))
    # pageviews: a non-product row at the same timestamp just before some views
    pv_idx = np.flatnonzero(rng.random(total_views) < pageview_prob)

    sess = np.concatenate(
        [view_session, view_session[add_idx], view_session[rem_idx], view_session[buy_view], view_session[pv_idx]]
    )
    item = np.concatenate(
        [
            view_item,
            view_item[add_idx],
            view_item[rem_idx],
            view_item[buy_view],
            np.full(len(pv_idx), -1, dtype=np.int64),
        ]
    )
    ts = np.concatenate([view_ts, add_ts, rem_ts, buy_ts, view_ts[pv_idx]])
    action = np.concatenate(
        [
            np.full(total_views, _DETAIL, dtype=np.int8),
            np.full(len(add_idx), _ADD, dtype=np.int8),
            np.full(len(rem_idx), _REMOVE, dtype=np.int8),
            np.full(len(buy_view), _PURCHASE, dtype=np.int8),
            np.full(len(pv_idx), _PAGEVIEW, dtype=np.int8),
        ]
    )
    # session order is random (shuffled session ids), time order inside; pageview sorts before its view
    sess_rank = rng.permutation(n_sessions)
    perm = np.lexsort((action, ts, sess_rank[sess]))
    sess, item, ts, action = sess[perm], item[perm], ts[perm], action[perm]

    # ---- strings -------------------------------------------------------------------------------------
    session_hash = _hex_ids(rng, n_sessions)
    sku_hash = _hex_ids(rng, n_items)
    item_url = _hex_ids(rng, n_items)
    n_pages = max(50, n_items // 10)
    page_url = _hex_ids(rng, n_pages)
    is_pv = action == _PAGEVIEW
    # String columns are dictionary-encoded (index + a small dictionary of distinct hashes): that keeps
    # 10M rows of 64-character hashes at a few hundred MB, and DuckDB and pyarrow's CSV writer read
    # dictionaries natively.
    url_dict = np.concatenate([item_url, page_url])
    url_idx = np.where(is_pv, n_items + rng.integers(0, n_pages, size=len(action)), item)
    sku_idx = pa.array(item.astype(np.int32), mask=is_pv)
    events = pa.table(
        {
            "session_id_hash": _dict(sess, session_hash),
            "event_type": _dict(np.where(is_pv, 0, 1), np.array([b"pageview", b"event_product"])),
            "product_action": pa.DictionaryArray.from_arrays(
                pa.array(action.astype(np.int32), mask=is_pv), pa.array(_ACTION_NAMES.astype(str))
            ),
            "product_sku_hash": pa.DictionaryArray.from_arrays(sku_idx, pa.array(sku_hash).cast(pa.string())),
            "server_timestamp_epoch_ms": pa.array(ts, pa.int64()),
            "hashed_url": _dict(url_idx, url_dict),
        }
    )

    price_bucket = np.clip(np.round(rng.normal(5.5, 2.0, size=n_items)), 1, 10).astype(np.int64)
    cat_hash = _hex_ids(rng, n_cat)
    catalogue = pa.table(
        {
            "product_sku_hash": pa.array(sku_hash).cast(pa.string()),
            "category_hash": pa.array(cat_hash[category]).cast(pa.string()),
            "price_bucket": pa.array(price_bucket, pa.int64()),
        }
    )
    return SyntheticEvents(events=events, catalogue=catalogue, n_sessions=n_sessions)


def mean_views(length_mu: float = 0.55, length_sigma: float = 1.0, max_length: int = 50) -> float:
    """Expected product views per session: the mean of ``min(ceil(lognormal(mu, sigma)), max_length)``."""
    cdf = [
        0.5 * (1 + math.erf((math.log(k) - length_mu) / (length_sigma * math.sqrt(2)))) for k in range(1, max_length)
    ]
    # E[L] = sum over k >= 1 of P(L >= k) = 1 + sum over k in 1..max_length-1 of P(L > k)
    return 1.0 + sum(1.0 - c for c in cdf)


def sessions_for_events(
    n_events: int,
    length_mu: float = 0.55,
    length_sigma: float = 1.0,
    max_length: int = 50,
    pageview_prob: float = 0.3,
    add_prob: float = 0.08,
) -> int:
    """How many sessions yield about ``n_events`` raw rows with these settings (for benchmarks)."""
    # each view brings itself, a pageview with pageview_prob and an add with add_prob (+ small extras)
    per_view = 1.0 + pageview_prob + add_prob * 1.25
    return max(1, round(n_events / (mean_views(length_mu, length_sigma, max_length) * per_view)))
