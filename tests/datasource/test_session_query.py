"""Helpers of the one query: the item-key and action-rank lookups (DuckDB marts), the integer order check."""

from __future__ import annotations

import numpy as np
import pytest

from recframe.datasource.session_query import ItemKeys, action_names, is_sorted_by
from recframe.interfaces import DataError


def test_item_keys_name_each_key_with_one_shared_string():
    keys = ItemKeys(np.array([2, 1, 4]), np.array(["b", "a", "d"], dtype=object))
    got = keys.skus(np.array([4, 1, 1, 2], dtype=np.int32))
    assert got.tolist() == ["d", "a", "a", "b"] and got[1] is got[2]
    assert keys.skus(np.array([], dtype=np.int32)).tolist() == []


@pytest.mark.parametrize("bad", [[3], [0], [5], [-1]])
def test_a_key_the_items_mart_does_not_know_is_a_data_error(bad):
    keys = ItemKeys(np.array([1, 2, 4]), np.array(["a", "b", "d"], dtype=object))
    with pytest.raises(DataError, match="items mart"):
        keys.skus(np.array(bad))


def test_is_sorted_by_checks_session_order_then_time():
    ts = np.array([5, 6, 1, 2])
    assert is_sorted_by(np.array([0, 0, 1, 1]), ts)
    assert not is_sorted_by(np.array([1, 1, 0, 0]), ts)  # sessions out of order
    assert not is_sorted_by(np.array([0, 0, 0, 1]), ts)  # time goes back inside a session
    assert is_sorted_by(np.array([3]), np.array([1]))


def test_action_ranks_are_named_with_shared_strings_and_an_unknown_rank_is_a_data_error():
    got = action_names(np.array([1, 2, 4, 1], dtype=np.uint8))
    assert got.tolist() == ["detail", "add", "purchase", "detail"] and got[0] is got[3]
    assert action_names(np.array([], dtype=np.uint8)).tolist() == []
    with pytest.raises(DataError, match="action rank"):
        action_names(np.array([1, 6]))
