"""Helpers of the one query: the item-key and action-rank lookups (DuckDB marts), the integer order check."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from recframe.datasource.session_query import (
    ItemKeys,
    action_categorical,
    arrays_from_arrow,
    check_numbering,
    is_sorted_by,
    run_starts,
    session_positions,
    sessions_by_id,
    used_categorical,
)
from recframe.interfaces import DataError


def test_item_keys_name_each_key_with_one_shared_string():
    keys = ItemKeys(np.array([2, 1, 4]), np.array(["b", "a", "d"], dtype=object))
    got = keys.categorical(np.array([4, 1, 1, 2], dtype=np.int32))
    assert list(got) == ["d", "a", "a", "b"] and list(got.categories) == ["a", "b", "d"]
    assert list(keys.categorical(np.array([], dtype=np.int32))) == []


@pytest.mark.parametrize("bad", [[3], [0], [5], [-1]])
def test_a_key_the_items_mart_does_not_know_is_a_data_error(bad):
    keys = ItemKeys(np.array([1, 2, 4]), np.array(["a", "b", "d"], dtype=object))
    with pytest.raises(DataError, match="items mart"):
        keys.categorical(np.array(bad))


def test_is_sorted_by_checks_session_order_then_time():
    ts = np.array([5, 6, 1, 2])
    assert is_sorted_by(np.array([0, 0, 1, 1]), ts)
    assert not is_sorted_by(np.array([1, 1, 0, 0]), ts)  # sessions out of order
    assert not is_sorted_by(np.array([0, 0, 0, 1]), ts)  # time goes back inside a session
    assert is_sorted_by(np.array([3]), np.array([1]))


def test_action_ranks_are_named_with_one_string_each_and_an_unknown_rank_is_a_data_error():
    got = action_categorical(np.array([1, 2, 4, 1], dtype=np.uint8))
    assert list(got) == ["detail", "add", "purchase", "detail"] and len(got.categories) == 3
    assert list(action_categorical(np.array([], dtype=np.uint8))) == []
    with pytest.raises(DataError, match="action rank"):
        action_categorical(np.array([1, 6]))


def _sessions_relation(collide_salt0: bool):
    def relation(salt: int) -> str:
        key = "1::ubigint" if collide_salt0 and salt == 0 else f"hash(session_id, {salt})"
        return f"""(select {key} as session_key, session_id, s, length
                    from (values ('b', 10, 2), ('a', 5, 3), ('c', 7, 2)) as t(session_id, s, length))"""

    return relation


def test_sessions_come_in_id_order_and_colliding_hashes_take_the_next_salt():
    con = duckdb.connect()
    found, salt = sessions_by_id(con, _sessions_relation(collide_salt0=False), [])
    assert salt == 0 and found["session_id"].tolist() == ["a", "b", "c"] and found["s"].tolist() == [5, 10, 7]
    found, salt = sessions_by_id(con, _sessions_relation(collide_salt0=True), [])
    assert salt == 1 and len(set(found["key"].tolist())) == 3


def test_events_are_placed_by_their_session_hash_and_a_foreign_hash_is_a_data_error():
    keys = np.array([30, 10, 20], dtype=np.uint64)  # sessions in id order
    events = np.array([20, 20, 30, 10, 10, 10], dtype=np.uint64)
    assert session_positions(events, run_starts(events), keys).tolist() == [2, 2, 0, 1, 1, 1]
    with pytest.raises(DataError, match="changed while it was read"):
        bad = np.array([20, 99], dtype=np.uint64)
        session_positions(bad, run_starts(bad), keys)


def _check(rows: list[int], ts: list[int], whole: bool) -> None:
    sessions = {"s": np.array([5, 10]), "length": np.array([2, 1])}
    positions = np.array(rows)
    check_numbering(positions, run_starts(positions), np.array(ts), sessions, whole=whole)


def test_a_session_whose_events_do_not_match_its_start_or_length_is_a_data_error():
    _check([0, 0, 1], [5, 6, 10], whole=True)
    with pytest.raises(DataError, match="changed while it was read"):
        _check([0, 1, 1], [5, 10, 11], whole=True)  # lengths swapped
    with pytest.raises(DataError, match="changed while it was read"):
        _check([0, 0, 1], [6, 7, 10], whole=True)  # starts late
    _check([0, 1], [6, 10], whole=False)  # filtered: may start later


def test_numeric_columns_fill_arrays_of_the_counted_length_and_a_wrong_count_is_a_data_error():
    con = duckdb.connect()
    rel = "select range as x, range::varchar as y from range(2500)"
    got = arrays_from_arrow(con.sql(rel), batch_rows=1000, rows=2500)
    assert got["x"].tolist() == list(range(2500)) and got["y"][-1] == "2499"
    with pytest.raises(DataError, match="2500 rows where 3000 were counted"):
        arrays_from_arrow(con.sql(rel), batch_rows=1000, rows=3000)


def test_split_frames_are_categoricals_keeping_only_used_categories_in_sorted_order():
    cat = used_categorical(np.array([2, 0, 2]), np.array(["a", "b", "c"], dtype=object))
    assert list(cat.categories) == ["a", "c"] and cat.codes.tolist() == [1, 0, 1]
    keys = ItemKeys(np.array([1, 2, 3]), np.array(["z", "x", "y"], dtype=object))
    items = keys.categorical(np.array([1, 3, 1]))
    assert list(items) == ["z", "y", "z"] and list(items.categories) == ["y", "z"]
    actions = action_categorical(np.array([4, 1, 2], dtype=np.uint8))
    assert list(actions) == ["purchase", "detail", "add"] and list(actions.categories) == ["add", "detail", "purchase"]
