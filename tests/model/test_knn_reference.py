"""Session kNN against a loop-by-loop reference where the ``k`` cut, its tie-breaking and time decay
decide the result.

The training data has six items and short sessions, so many candidate neighbours of a prefix are
exactly as similar as each other; with ``k`` of 1 to 3 the cut falls inside such a tie, and which
sessions survive it is the whole answer. Sessions end one "day" apart (``ts_per_day=1``), so STAN's
session-recency decay (``lambda_snh``) reorders neighbours that plain similarity ranks the other way.
Each test also checks that its data really exercises what it is about (a tie at the cut, a cut
changed by the decay), so it cannot pass vacuously.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recframe.model.knn.sknn import SKNN
from recframe.model.knn.stan import STAN
from recframe.model.knn.vsknn import VSKNN
from recframe.model.knn.vstan import VSTAN
from tests.helpers.knn_reference import reference

N_ITEMS = 6


def training_sessions(n: int = 45, seed: int = 11) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    return [[f"i{x}" for x in rng.integers(0, N_ITEMS, int(rng.integers(1, 5)))] for _ in range(n)]


def as_events(sessions: list[list[str]]) -> pd.DataFrame:
    """Session ``s`` ends at ts ``s + 1`` (days, with ``ts_per_day=1``): oldest first, one day apart."""
    rows = [
        (f"s{s:03d}", item, s + (t + 1) / len(items))
        for s, items in enumerate(sessions)
        for t, item in enumerate(items)
    ]
    return pd.DataFrame(rows, columns=["session_id", "item_id", "ts"])


def prefixes(n: int = 60, seed: int = 5) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [list(map(int, rng.integers(0, N_ITEMS, int(rng.integers(1, 4))))) for _ in range(n)]


def fitted(model, sessions: list[list[str]] | None = None):
    sessions = sessions or training_sessions()
    model.fit(as_events(sessions))
    train = [[model.vocab.index[x] for x in s] for s in sessions]
    return model, train


def compare(model, sessions: list[list[str]] | None = None, ps: list[list[str]] | None = None) -> list:
    """Assert the model's scores equal the reference's for every prefix; return (tie, chosen) per prefix."""
    model, train = fitted(model, sessions)
    # session s ended len(train) - 1 - s days before the newest one (as_events, ts_per_day=1)
    ages = [(len(train) - 1 - s) / getattr(model, "ts_per_day", 1.0) for s in range(len(train))]
    ps = [[model.vocab.index[x] for x in p] for p in ps] if ps else prefixes()
    got = np.asarray(model.score_next([np.asarray(p) for p in ps]))
    seen = []
    for p, row in zip(ps, got, strict=True):
        ref = reference(model, train, p, model.vocab.counts, ages)
        np.testing.assert_allclose(row, ref.scores, rtol=1e-5, atol=1e-7, err_msg=f"prefix {p}")
        seen.append((ref.tie_at_cut, ref.chosen))
    return seen


TIES = [
    SKNN(k=1, sample_size=0, tie_break="newest"),
    SKNN(k=3, sample_size=0, tie_break="oldest"),
    SKNN(k=2, sample_size=12, tie_break="oldest"),
    VSKNN(k=2, sample_size=0, weighting="div", weighting_score="div", tie_break="newest"),
    VSKNN(k=3, sample_size=0, weighting="div", weighting_score="div", idf_weighting=1.0, tie_break="oldest"),
    STAN(k=2, sample_size=0, lambda_spw=None, lambda_snh=None, lambda_inh=1.0, tie_break="oldest"),
    VSTAN(k=1, sample_size=0, lambda_spw=None, lambda_snh=None, lambda_ipw=1.0, lambda_idf=None, tie_break="newest"),
]


@pytest.mark.parametrize("model", TIES, ids=lambda m: f"{m.name}-k{m.k}-{m.tie_break}-s{m.sample_size}")
def test_the_k_cut_and_its_tie_break_match_the_reference(model):
    """Catches the tie rule inverted (oldest kept for ``newest``), ties decided by summation order
    instead of the rule, a cut that keeps k + 1 or k - 1 neighbours, and the least similar kept."""
    seen = compare(model)
    assert sum(tie for tie, _ in seen) >= 5, "the data must put the k cut inside ties"


@pytest.mark.parametrize(
    ("tie_break", "sessions", "winner"),
    [
        ("newest", [["a", "b"], ["c"], ["d"], ["e"]], 1),  # the newer, ["c"], has the smaller float
        ("oldest", [["c"], ["a", "b"], ["d"], ["e"]], 0),  # the older, ["c"], has the smaller float
    ],
)
def test_ties_that_floats_break_by_summation_order_still_follow_the_rule(tie_break, sessions, winner):
    """Prefix a b c d e: V-SKNN weighs its items 0.2, 0.4, 0.6, 0.8, 1.0, so ["a", "b"] and ["c"] are
    equally similar (0.2 + 0.4 = 0.6) but not as floats (0.6000000000000001 > 0.6). With k = 3, the
    sessions of d and e are in and the third place is that tie. Catches a cut that compares raw
    floats, where ["a", "b"] always wins whatever ``tie_break`` says."""
    model = VSKNN(k=3, sample_size=0, weighting="div", weighting_score="div", tie_break=tie_break)
    [(tie, chosen)] = compare(model, sessions, [["a", "b", "c", "d", "e"]])
    assert tie and sorted(chosen) == sorted([winner, 2, 3])


def test_the_tie_break_changes_which_neighbours_vote():
    """The two rules must disagree somewhere on this data, or the comparison above proves nothing."""
    newest = compare(SKNN(k=1, sample_size=0, tie_break="newest"))
    oldest = compare(SKNN(k=1, sample_size=0, tie_break="oldest"))
    assert sum(a[1] != b[1] for a, b in zip(newest, oldest, strict=True)) >= 5


DECAY = [
    STAN(k=2, sample_size=0, lambda_spw=1.0, lambda_snh=3.0, lambda_inh=1.0, ts_per_day=1.0),
    STAN(k=1, sample_size=10, lambda_spw=None, lambda_snh=10.0, lambda_inh=None, ts_per_day=1.0, tie_break="oldest"),
    VSTAN(
        k=3,
        sample_size=0,
        lambda_spw=1.0,
        lambda_snh=5.0,
        lambda_inh=2.0,
        lambda_ipw=1.0,
        lambda_idf=1.0,
        ts_per_day=1.0,
    ),
]


@pytest.mark.parametrize("model", DECAY, ids=lambda m: f"{m.name}-k{m.k}-snh{m.lambda_snh}")
def test_session_recency_decay_before_the_cut_matches_the_reference(model):
    """Catches the decay applied after the k cut (to the votes only), measured from the oldest
    session instead of the newest, or with the sign of the age flipped (old sessions favoured)."""
    seen = compare(model)
    undecayed = type(model)(**{**model.params(), "lambda_snh": None})
    plain = compare(undecayed)
    changed = sum(a[1] != b[1] for a, b in zip(seen, plain, strict=True))
    assert changed >= 5, "the decay must change which neighbours survive the cut on this data"
