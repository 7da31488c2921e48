"""Helpers over long-format event frames (``session_id, item_id, ts[, action]``, sorted by session).

The data step may hand over the id columns as pandas categoricals (integer codes plus one string
per session or item) instead of one Python object per event: at tens of millions of events that
is the difference between holding the splits as integers and holding gigabytes of pointers.
Code that only needs to tell sessions apart reads the codes through :func:`session_codes`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def session_codes(column: pd.Series) -> np.ndarray:
    """The session column as an array that orders and compares like the ids themselves.

    A categorical column whose categories are sorted gives its integer codes (no object array is
    built); any other column gives its values.
    """
    if isinstance(column.dtype, pd.CategoricalDtype) and column.cat.categories.is_monotonic_increasing:
        return column.cat.codes.to_numpy()
    return column.to_numpy()


#: the id columns the data step hands over as categoricals
ID_COLUMNS = ("session_id", "item_id", "action")


def categorical_ids(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its id columns (:data:`ID_COLUMNS`) as categoricals with sorted categories.

    Every data source hands its splits over this way, so that a frame's dtypes do not depend on
    the warehouse it came from; columns that already are categoricals are kept as they are.
    """
    out = {}
    for name in ID_COLUMNS:
        if name in frame.columns and not isinstance(frame[name].dtype, pd.CategoricalDtype):
            out[name] = pd.Categorical(frame[name].to_numpy(dtype=object))
    return frame.assign(**out) if out else frame
