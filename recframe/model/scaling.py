"""Data-aware defaults: parameters of the kNN family and GRU4Rec derived from a :class:`DataProfile`.

A model key left at ``auto`` (the shipped yaml's value for every key listed here) is filled in by
these rules in ``fit``, from the statistics of the training split; an explicit value always wins.
Each rule is anchored on published parameters (session-rec's kNN defaults and tuned
configurations, the official GRU4Rec parameter files in ``conf/experiment/gru4rec_*.yaml``) and on
recframe's own measurements (docs/benchmarks.md), and follows the data's statistics rather than
the name of a data set. docs/models.md shows the rules as a table.
"""

from __future__ import annotations

import math
from typing import Any

from recframe.model.profile import DataProfile

KNN_MODELS = ("sknn", "vsknn", "stan", "vstan")
KNN_SCALED = {
    "sknn": ("k", "sample_size"),
    "vsknn": ("k", "sample_size"),
    "stan": ("k", "sample_size", "ts_per_day", "lambda_snh"),
    "vstan": ("k", "sample_size", "ts_per_day", "lambda_snh"),
}

# session-rec's defaults bracket the neighbourhood: V-SKNN/S-KNN ship k=100 of 500 candidates,
# STAN/V-STAN k=500 of 5,000. Tuned configurations on sparse data reach 500 (V-SKNN on Diginetica,
# conf/experiment/vsknn_diginetica.yaml) and beyond (STAN up to 3,000); the cap of 500 bounds the
# scoring cost, which grows with k and sample_size.
K_MIN, K_MAX = 100, 500
SAMPLE_PER_K = 10  # STAN's published ratio (500 of 5,000) and session-rec's tuned Diginetica V-SKNN
LAMBDA_SNH_DAYS = 5.0  # session-rec's STAN/V-STAN default

GRU_SCALED = (
    "loss",
    "layers",
    "batch_size",
    "n_sample",
    "learning_rate",
    "momentum",
    "dropout_p_embed",
    "dropout_p_hidden",
    "sample_alpha",
    "bpreg",
    "elu_param",
    "logq",
)
# Below this many training events GRU4Rec's authors found BPR-max better, above it cross-entropy
# (official README, "Hyperparameter tuning": "BPR-max [performs] better on smaller and
# cross-entropy [...] on larger datasets"; the bpr-max winners, Diginetica, RetailRocket and Coveo,
# have about a million training events, the cross-entropy winners, Yoochoose and Rees46, tens of
# millions). It holds on small data too: on the synthetic default data (77,000 training events)
# BPR-max with the published median settings reached HR@20 0.611 / MRR@20 0.270 against 0.550 /
# 0.265 for the cross-entropy settings shipped before (4 CPU epochs, 128 units).
XE_MIN_EVENTS = 5_000_000
# From this many events batches of 128 (the published median of 48 to 240); below, batches of 64
# give a small data set more updates per epoch (the shipped default on the synthetic data).
LARGE_BATCH_EVENTS = 300_000
WIDTHS = (512, 384, 256, 192, 128, 96, 64)
# CPU seconds one epoch may take before the layer is narrowed (2 cores of the dev VM; a default run
# of 4 epochs then trains within about 8 minutes). docs/benchmarks.md: the published Diginetica
# settings take 251 s per epoch there, the laptop preset 79 s.
CPU_EPOCH_BUDGET_S = 120.0
# Per-event cost of one GRU4Rec training step on CPU, fitted (least squares, within 10 %) to the
# seven rows of docs/benchmarks.md's "How the settings of gru4rec_diginetica trade speed" table:
# seconds/event = C_STEP/b + C_GRU*w^2 + C_SCORE*w*(b+n) + C_ROWS*w*(b+n)/b.
C_STEP, C_GRU, C_SCORE, C_ROWS = 8.05e-3, 4.28e-10, 1.71e-11, 9.44e-9

# The official GRU4Rec parameter files (conf/experiment/gru4rec_*.yaml), per loss: the median of
# the published winners of that loss, so no single data set decides.
BPR_MAX_PUBLISHED = {  # Diginetica, RetailRocket, Coveo
    "learning_rate": 0.05,  # 0.05, 0.05, 0.05
    "momentum": 0.4,  # 0.15, 0.4, 0.4
    "dropout_p_embed": 0.5,  # 0.5, 0.5, 0.35
    "dropout_p_hidden": 0.05,  # 0.3, 0.05, 0.0
    "sample_alpha": 0.3,  # 0.3, 0.4, 0.2
    "bpreg": 1.85,  # 0.9, 1.95, 1.85
    "elu_param": 1.0,  # 1.0, 0.5, 1.0
    "logq": 0.0,  # logQ is a softmax correction: no effect on BPR-max
}
CROSS_ENTROPY_PUBLISHED = {  # Yoochoose, Rees46, RSC15
    "learning_rate": 0.07,  # 0.07, 0.065, 0.1
    "momentum": 0.0,  # 0, 0, 0
    "dropout_p_embed": 0.1,  # 0.0, 0.45, 0.1
    "dropout_p_hidden": 0.0,  # 0.2, 0.0, 0.0
    "sample_alpha": 0.5,  # 0.2, 0.5, 0.75
    "bpreg": 0.0,  # BPR-max only
    "elu_param": 0.0,  # BPR-max only
    "logq": 1.0,  # 1, 1, 1: "cross-entropy usually works best with logq=1" (official README)
}


def scaled_params(model: Any, prefix: str = "model") -> dict[str, Any]:
    """The values a fitted model (and each member of a hybrid) scaled to the data, by dotted config key.

    Keys left at ``auto`` are resolved in ``fit``; this is what a run logs and tracks as the model's
    parameters, e.g. ``{"model.k": 500, "model.members.gru.layers": [384]}``.
    """
    out = {f"{prefix}.{key}": value for key, value in (getattr(model, "scaled_params", None) or {}).items()}
    for name, member in (getattr(model, "members", None) or {}).items():
        out.update(scaled_params(member, f"{prefix}.members.{name}"))
    return out


def describe(params: dict[str, Any]) -> str:
    """``k=500, sample_size=5000``: resolved values for a log line."""
    return ", ".join(f"{key}={value}" for key, value in params.items())


def nice(x: float) -> int:
    """``x`` rounded on a log scale to the nearest 1, 2 or 5 times a power of ten (at least 1)."""
    if x <= 1:
        return 1
    exp = math.floor(math.log10(x))
    steps = [m * 10**e for e in (exp, exp + 1) for m in (1, 2, 5)]
    return int(min(steps, key=lambda s: abs(math.log(s / x))))


def neighbour_pool(profile: DataProfile) -> float:
    """Candidate neighbours a typical session brings to a kNN search: its median length times the
    sessions that hold the item of a typical click (``profile.item_sessions``; where a profile built
    by hand lacks it, the plain mean of sessions per item, a lower estimate since clicks go to popular
    items), bounded by the number of sessions."""
    per_click = profile.item_sessions
    if per_click <= 0:  # a profile built by hand: events per item, repeats removed
        per_click = profile.events * (1.0 - profile.repeat_share) / max(profile.items, 1)
    return min(float(profile.sessions), max(profile.median_length, 1.0) * per_click)


def knn_defaults(name: str, profile: DataProfile) -> dict[str, Any]:
    """``k`` and ``sample_size`` (for STAN/V-STAN also ``ts_per_day`` and ``lambda_snh``) for this data.

    * ``k`` = twice the typical candidate pool (:func:`neighbour_pool`), rounded to 1-2-5 and kept
      within [100, 500]. Where candidates are scarce (sparse catalogues such as Diginetica, about 260
      candidates per session) the tuned configurations let all of them vote, weighted by their
      similarity: session-rec's tuned Diginetica V-SKNN uses k=500 of 5,000 against the default
      k=100 of 500, and published tuned STAN/V-STAN on Diginetica use k of 500 to 3,000. Where
      candidates abound, 500 is STAN's published default; the scoring cost grows with it.
    * ``sample_size`` = 10 x ``k`` (STAN's published 500 of 5,000), at most the number of sessions:
      with this many of the most recent candidates kept, the cut only bites where candidates are
      plentiful, where recency is the better filter.
    * STAN/V-STAN ``ts_per_day``: :attr:`DataProfile.ts_per_day_guess` when ``ts`` is a clock. When
      it is an ordinal (Diginetica's ``session * 100 + position``) there are no days, only an order:
      ``ts_per_day`` is then the span of ``ts``, so that ``lambda_snh`` counts training periods and
      session-rec's ``lambda_snh`` = 5 leaves the oldest neighbour exp(-1/5) = 82 % of its
      similarity, a mild preference for recent sessions (on Diginetica HR@20 / MRR@20 0.5167 /
      0.1866, against 0.5146 / 0.1861 with the decay off and 0.5153 / 0.1863 with an ordinal read
      as milliseconds). ``lambda_snh`` is session-rec's 5 in both cases.
    """
    if name not in KNN_MODELS:
        raise ValueError(f"no kNN defaults for model {name!r}; one of {', '.join(KNN_MODELS)}")
    k = min(K_MAX, max(K_MIN, nice(2.0 * neighbour_pool(profile))))
    sample_size = max(k, min(SAMPLE_PER_K * k, profile.sessions))
    out: dict[str, Any] = {"k": k, "sample_size": sample_size}
    if name in ("stan", "vstan"):
        clock = profile.ts_per_day_guess
        out["ts_per_day"] = float(clock) if clock else (float(profile.ts_span) if profile.ts_span > 0 else 1.0)
        out["lambda_snh"] = LAMBDA_SNH_DAYS
    return out


def gru_epoch_seconds_cpu(events: int, width: int, n_sample: int, batch_size: int) -> float:
    """Modelled seconds of one GRU4Rec epoch on the 2-core dev VM (see ``C_STEP`` and friends)."""
    w, n, b = float(width), float(n_sample), float(batch_size)
    per_event = C_STEP / b + C_GRU * w * w + C_SCORE * w * (b + n) + C_ROWS * w * (b + n) / b
    return events * per_event


def _width_for_data(events: int) -> int:
    """Layer width that the data can feed: about sqrt(events) / 2, on the ladder of ``WIDTHS``.

    Anchors: the shipped default (128 units) on the synthetic data's 77,000 training events, and the
    published winners of 0.9M events and more (Diginetica, Coveo, Rees46 512; Yoochoose 480;
    RetailRocket 224 is the one exception). The square root joins the two anchors, and keeps small
    data sets at small, fast layers (GRU4Rec's official search space spans 64 to 512 units).
    """
    target = math.sqrt(max(events, 1)) / 2.0
    return min(WIDTHS, key=lambda w: abs(math.log(w / target)))


def gru_defaults(
    profile: DataProfile, device: str, *, loss: str | None = None, epoch_budget_s: float | None = None
) -> dict[str, Any]:
    """GRU4Rec parameters for this data on ``device`` (``cpu``, or ``cuda``/``gpu``).

    * ``loss``: BPR-max below 5M training events, cross-entropy from there (``XE_MIN_EVENTS``: the
      official README's finding, and recframe's synthetic data agrees). Pass ``loss`` to condition
      the rest on a loss the user chose.
    * The loss's other settings: the median of the published winners with that loss
      (``BPR_MAX_PUBLISHED``, ``CROSS_ENTROPY_PUBLISHED``), so that no single data set decides.
    * ``n_sample``: :func:`_negatives`, 2048 for large catalogues (official README), 512 for small
      ones (measured on the YooChoose sample and the synthetic data).
    * ``layers``: one layer, :func:`_width_for_data`. ``batch_size``: 64 below 300,000 events, 128
      from there (``LARGE_BATCH_EVENTS``), at most a tenth of the sessions so that the
      session-parallel lanes stay filled.
    * On CPU the modelled epoch time (:func:`gru_epoch_seconds_cpu`) must fit ``epoch_budget_s``
      (default ``CPU_EPOCH_BUDGET_S``): first the laptop preset's trade (n_sample at most 1024, batches
      of 256 once the data has 300,000 events; docs/benchmarks.md: several times faster for about
      0.008 HR@20 on Diginetica), then narrower layers. A GPU runs the data's sizes as they are.
    """
    events = profile.events
    if loss is None:
        loss = "cross-entropy" if events >= XE_MIN_EVENTS else "bpr-max"
    settings = dict(BPR_MAX_PUBLISHED if loss == "bpr-max" else CROSS_ENTROPY_PUBLISHED)
    n_sample = _negatives(profile.items)
    batch = _lanes(64 if events < LARGE_BATCH_EVENTS else 128, profile.sessions)
    width = _width_for_data(events)
    if str(device).lower() == "cpu":
        budget = CPU_EPOCH_BUDGET_S if epoch_budget_s is None else float(epoch_budget_s)
        width, n_sample, batch = _fit_cpu_budget(profile, width, n_sample, batch, budget)
    return {"loss": loss, "layers": [width], "batch_size": batch, "n_sample": n_sample, **settings}


def _negatives(items: int) -> int:
    """Shared negatives: the largest power of two up to items / 16, within [512, 2048], at most the catalogue.

    2048 is "large enough to get good performance up to a few millions of items" (official README),
    reached from 32,768 items. Smaller catalogues need fewer, but not under 512: on the YooChoose
    100k sample (2,933 items, BPR-max, 4 CPU epochs) 128 negatives gave HR@20 / MRR@20 0.6863 /
    0.3595 against 0.6999 / 0.3690 with 512; on the synthetic data (8,748 items) 256, 512 and 2048
    gave 0.6098 / 0.2669, 0.6107 / 0.2695 and 0.6111 / 0.2718, the last at 2.4 times the CPU time.
    """
    n = 2 ** int(math.log2(max(items / 16.0, 1.0)))
    return min(min(2048, max(512, n)), 2 ** int(math.log2(max(items, 1))))


def _lanes(batch: int, sessions: int) -> int:
    """``batch`` lanes, at most a tenth of the sessions (a multiple of 8, at least 8)."""
    return max(8, min(batch, sessions // 10 // 8 * 8))


def _fit_cpu_budget(profile: DataProfile, width: int, n_sample: int, batch: int, budget: float) -> tuple[int, int, int]:
    """The widest (width, n_sample, batch) whose modelled CPU epoch fits ``budget``; else the cheapest."""
    cheap_n = min(n_sample, 1024)
    cheap_b = _lanes(256, profile.sessions) if profile.events >= LARGE_BATCH_EVENTS else batch
    options = [(w, n, b) for w in WIDTHS if w <= width for n, b in ((n_sample, batch), (cheap_n, max(batch, cheap_b)))]
    for w, n, b in options:
        if gru_epoch_seconds_cpu(profile.events, w, n, b) <= budget:
            return w, n, b
    return options[-1]
