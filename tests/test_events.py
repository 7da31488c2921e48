"""The id columns as categoricals, and the session codes that consumers read instead of strings."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recframe.events import categorical_ids, session_codes


def test_ids_become_categoricals_with_sorted_categories_and_the_values_are_kept():
    frame = pd.DataFrame({"session_id": ["s2", "s1", "s2"], "item_id": ["b", "a", "b"], "ts": [3, 1, 2]})
    out = categorical_ids(frame)
    assert isinstance(out["session_id"].dtype, pd.CategoricalDtype)
    assert list(out["session_id"].cat.categories) == ["s1", "s2"] and list(out["item_id"]) == ["b", "a", "b"]
    assert out["ts"].dtype == np.int64 and categorical_ids(out) is out  # already categorical: unchanged


def test_session_codes_order_and_compare_like_the_ids():
    ids = ["s1", "s1", "s3", "s2"]
    sorted_cats = pd.Series(pd.Categorical(ids))
    codes = session_codes(sorted_cats)
    assert codes.dtype.kind == "i" and codes.tolist() == [0, 0, 2, 1]
    unsorted = pd.Series(pd.Categorical(ids, categories=["s3", "s1", "s2"]))
    assert session_codes(unsorted).tolist() == ids  # codes would not order like the ids
    assert session_codes(pd.Series(ids)).tolist() == ids
