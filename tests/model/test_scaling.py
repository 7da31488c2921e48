"""Data-aware defaults: the profile of a training split and the rules that scale parameters to it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recframe.interfaces import DataError
from recframe.model.profile import MS_PER_DAY, S_PER_DAY, DataProfile, guess_ts_per_day
from recframe.model.scaling import (
    CPU_EPOCH_BUDGET_S,
    GRU_SCALED,
    XE_MIN_EVENTS,
    gru_defaults,
    gru_epoch_seconds_cpu,
    knn_defaults,
    nice,
)

# sessions of (item, ts): s0 repeats "a", s2 repeats "c" twice
ROWS = [
    ("s0", "a", 0), ("s0", "b", 1), ("s0", "a", 2),
    ("s1", "b", 3), ("s1", "c", 4),
    ("s2", "c", 5), ("s2", "c", 6), ("s2", "d", 7), ("s2", "c", 8),
]  # fmt: skip


def frame(rows=ROWS, ts_scale: float = 1.0, ts_offset: float = 0.0) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["session_id", "item_id", "ts"])
    df["ts"] = df["ts"] * ts_scale + ts_offset
    return df


def profile(**fields) -> DataProfile:
    """A Diginetica-sized profile (the SR-GNN split's training statistics), fields overridable."""
    base = dict(
        sessions=186_670,
        events=906_140,
        items=43_097,
        mean_length=4.85,
        median_length=4.0,
        repeat_share=0.16,
        ts_span=18_666_901.0,
        ts_per_day_guess=None,
        item_sessions=65.9,
    )
    return DataProfile(**{**base, **fields})


# ---- the profile ------------------------------------------------------------------------------


def test_profile_counts_sessions_items_lengths_and_repeats():
    p = DataProfile.of(frame())
    assert (p.sessions, p.events, p.items) == (3, 9, 4)
    assert p.mean_length == pytest.approx(3.0)
    assert p.median_length == 3.0
    assert p.repeat_share == pytest.approx(3 / 9)  # s0's second a, s2's second and third c
    assert p.ts_span == 8.0
    # sessions holding each item: a 1, b 2, c 2, d 1; click-weighted by those counts: (1+4+4+1)/6
    assert p.item_sessions == pytest.approx(10 / 6)
    assert DataProfile(**p.to_dict()) == p


def test_profile_does_not_depend_on_the_order_of_sessions():
    df = frame()
    shuffled = pd.concat([df[df.session_id == s] for s in ("s2", "s0", "s1")], ignore_index=True)
    assert DataProfile.of(shuffled) == DataProfile.of(df)


@pytest.mark.parametrize(
    ("scale", "offset", "expected"),
    [
        (60_000, 1.7e12, MS_PER_DAY),  # a click a minute, epoch milliseconds of 2023
        (60, 1.7e9, S_PER_DAY),  # the same in epoch seconds
        (1, 0, None),  # Diginetica-style ordinal: session * 100 + position
        (1, 1.7e9, None),  # an ordinal that happens to sit in the seconds band still moves by 1
        (60, 0, None),  # relative seconds since the start: no epoch, no days
    ],
)
def test_ts_per_day_is_read_from_magnitudes_and_steps(scale, offset, expected):
    assert DataProfile.of(frame(ts_scale=scale, ts_offset=offset)).ts_per_day_guess == expected


def test_datetime_ts_is_read_as_nanoseconds():
    df = frame()
    df["ts"] = pd.Timestamp("2024-03-01") + pd.to_timedelta(df["ts"] * 30, unit="s")
    assert DataProfile.of(df).ts_per_day_guess == MS_PER_DAY * 1e6


def test_ts_guess_without_finite_values_is_none():
    assert guess_ts_per_day(np.array([np.nan]), np.array([])) is None


def test_profile_refuses_empty_or_incomplete_events():
    with pytest.raises(DataError, match="empty"):
        DataProfile.of(frame().iloc[:0])
    with pytest.raises(DataError, match="ts"):
        DataProfile.of(frame().drop(columns="ts"))


def test_profile_summary_is_one_line():
    line = DataProfile.of(frame(ts_scale=60_000, ts_offset=1.7e12)).summary()
    assert "\n" not in line and "3 sessions" in line and "epoch ms" in line


# ---- the kNN rules ----------------------------------------------------------------------------


def test_nice_rounds_to_one_two_five():
    assert [nice(x) for x in (0.3, 1, 130, 160, 264, 380, 640, 4100)] == [1, 1, 100, 200, 200, 500, 500, 5000]


def test_sparse_candidates_let_all_neighbours_vote_as_the_tuned_configurations_do():
    # Diginetica: ~260 candidates per session -> session-rec's tuned k=500 of 5,000
    assert knn_defaults("vsknn", profile()) == {"k": 500, "sample_size": 5000}


def test_few_candidates_keep_the_published_floor_and_sample_size_never_exceeds_the_sessions():
    small = profile(sessions=800, events=3_000, items=900, median_length=3.0, item_sessions=5.0)
    got = knn_defaults("sknn", small)
    assert got == {"k": 100, "sample_size": 800}


def test_k_grows_with_the_candidate_pool_within_the_published_range():
    ks = [knn_defaults("stan", profile(item_sessions=x))["k"] for x in (1, 10, 20, 30, 60, 1000, 1e6)]
    assert ks == sorted(ks) and ks[0] == 100 and ks[-1] == 500
    for k in ks:
        assert knn_defaults("stan", profile(item_sessions=1000))["sample_size"] == 10 * 500 >= k


def test_a_hand_built_profile_without_item_sessions_estimates_them():
    # the plain mean of sessions per item: 906,140 events less 16 % repeats over 43,097 items
    plain = profile(item_sessions=906_140 * 0.84 / 43_097)
    assert knn_defaults("vsknn", profile(item_sessions=0.0)) == knn_defaults("vsknn", plain)


def test_stan_days_follow_the_clock_or_the_training_period():
    clock = knn_defaults("stan", profile(ts_per_day_guess=S_PER_DAY))
    assert (clock["ts_per_day"], clock["lambda_snh"]) == (S_PER_DAY, 5.0)
    ordinal = knn_defaults("vstan", profile())
    assert (ordinal["ts_per_day"], ordinal["lambda_snh"]) == (18_666_901.0, 5.0)
    assert knn_defaults("stan", profile(ts_span=0.0))["ts_per_day"] == 1.0


def test_knn_defaults_refuse_other_models():
    with pytest.raises(ValueError, match="gru"):
        knn_defaults("gru", profile())


# ---- the GRU4Rec rules ------------------------------------------------------------------------


def test_gru_on_a_gpu_gets_the_published_sizes_for_diginetica_sized_data():
    got = gru_defaults(profile(), "cuda")
    assert (got["loss"], got["layers"], got["n_sample"], got["batch_size"]) == ("bpr-max", [512], 2048, 128)
    assert set(got) == set(GRU_SCALED)


def test_gru_on_cpu_fits_the_epoch_budget_by_trading_size():
    p = profile()
    cpu, gpu = gru_defaults(p, "cpu"), gru_defaults(p, "cuda")
    assert gru_epoch_seconds_cpu(p.events, cpu["layers"][0], cpu["n_sample"], cpu["batch_size"]) <= CPU_EPOCH_BUDGET_S
    assert cpu["layers"][0] < gpu["layers"][0] and cpu["n_sample"] <= 1024
    tight = gru_defaults(p, "cpu", epoch_budget_s=1.0)  # nothing fits: the cheapest setting
    assert tight["layers"] == [64]


def test_the_cpu_cost_model_reproduces_the_measured_speeds():
    # docs/benchmarks.md: published [512]/2048/128 at 3,612 events/s, laptop [256]/1024/256 at 11,487
    for width, n, b, measured in ((512, 2048, 128, 3612), (256, 1024, 256, 11487)):
        modelled = 100_000 / gru_epoch_seconds_cpu(100_000, width, n, b)
        assert modelled == pytest.approx(measured, rel=0.15)


def test_gru_switches_to_cross_entropy_on_large_data_and_follows_an_explicit_loss():
    large = gru_defaults(profile(events=XE_MIN_EVENTS, sessions=1_500_000), "cuda")
    assert (large["loss"], large["logq"], large["momentum"]) == ("cross-entropy", 1.0, 0.0)
    chosen = gru_defaults(profile(), "cuda", loss="cross-entropy")
    assert (chosen["loss"], chosen["logq"], chosen["bpreg"]) == ("cross-entropy", 1.0, 0.0)


def test_gru_sizes_follow_the_catalogue_and_the_data():
    synthetic = profile(sessions=16_424, events=77_242, items=8_748, median_length=3.0, item_sessions=19.1)
    got = gru_defaults(synthetic, "cpu")
    assert (got["layers"], got["n_sample"], got["batch_size"]) == ([128], 512, 64)
    tiny = gru_defaults(profile(sessions=100, events=400, items=300), "cuda")
    assert tiny["n_sample"] == 256 and tiny["batch_size"] == 8 and tiny["layers"] == [64]  # 300 items
    yoochoose_sample = gru_defaults(profile(sessions=17_794, events=70_278, items=2_933), "cuda")
    assert yoochoose_sample["n_sample"] == 512
