"""Unit tests of the behavioural computations, on inputs whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recframe.tester.behaviour import (
    cooccurrence_similarity,
    embedding_similarity,
    jaccard_rows,
    popularity_buckets,
)


def test_popularity_buckets_by_event_share() -> None:
    counts = np.array([50, 20, 10, 10, 5, 5, 0])  # total 100
    labels = popularity_buckets(counts)
    # item 0 holds the first 50% -> head; items 1, 2 start before 80% -> torso; the rest tail
    assert labels.tolist() == [0, 1, 1, 2, 2, 2, 2]


def test_popularity_buckets_all_zero() -> None:
    assert popularity_buckets(np.zeros(3)).tolist() == [2, 2, 2]


def test_cooccurrence_similarity() -> None:
    train = pd.DataFrame(
        {
            "session_id": ["a", "a", "b", "b", "c", "c"],
            "item_id": ["x", "y", "x", "y", "z", "z"],  # z repeated within one session counts once
        }
    )
    items = np.array(["x", "y", "z"], dtype=object)
    (sim,) = cooccurrence_similarity(train, items, [(np.array([0, 0, 2]), np.array([1, 2, 2]))])
    assert sim == pytest.approx([1.0, 0.0, 1.0])


def test_embedding_similarity_handles_zero_vectors() -> None:
    emb = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 0.0]])
    assert embedding_similarity(emb, np.array([0, 0]), np.array([1, 2])) == pytest.approx([1.0, 0.0])


def test_jaccard_rows() -> None:
    a = np.array([[1, 2, 3], [1, 2, 3]])
    b = np.array([[3, 2, 1], [4, 5, 1]])
    assert jaccard_rows(a, b) == pytest.approx([1.0, 1 / 5])


def test_less_wrong_lift_positive_when_mistakes_are_near(tmp_path, dataset, markov) -> None:
    """Markov's top-1 on a miss is a within-category neighbour; in its own embedding space that is
    closer to the truth than a random item whenever the truth is the category successor."""
    from recframe.tester.behaviour import less_wrong
    from recframe.tester.metrics import headline

    h = headline(markov, dataset, [1, 20])
    out = less_wrong(markov, h, dataset, 1, 500, 0)
    assert out["misses"] > 0 and out["sampled"] <= 500
    assert out["embedding"]["lift"] > 0
    assert out["cooccurrence"]["lift"] > 0
