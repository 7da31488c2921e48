"""The data benchmark's output hash: a side's train, valid and test sessions as one digest.

Defined once for every side of ``benchmarks/data_sides.py`` and computed from Arrow buffers and
numpy arrays (never a Python object per event), after the side's work is measured.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

SPLITS = ("train", "valid", "test")


def _arrow_columns(frame: Any) -> tuple[Any, Any, Any]:
    """``session_id``, ``item_id`` (Arrow strings) and ``ts`` (numpy int64) of a pandas, Polars or
    Arrow frame."""
    import numpy as np
    import pyarrow as pa

    if hasattr(frame, "to_arrow"):  # Polars
        frame = frame.to_arrow()
    elif not isinstance(frame, pa.Table):  # pandas
        frame = pa.Table.from_pandas(frame[["session_id", "item_id", "ts"]], preserve_index=False)

    def text(name: str) -> pa.Array:
        col = frame[name].combine_chunks() if frame.num_rows else pa.array([], pa.large_string())
        if pa.types.is_dictionary(col.type):
            col = col.dictionary_decode()
        col = col.cast(pa.large_string())
        if col.null_count:
            raise ValueError(f"{name} holds nulls")
        return col

    ts = np.asarray(frame["ts"].to_numpy() if frame.num_rows else [], dtype="<i8")
    return text("session_id"), text("item_id"), ts


def _string_bytes(col: Any) -> tuple[Any, Any]:
    """Each value's byte length (int64) and all values' bytes back to back: a string column's
    canonical encoding."""
    import numpy as np

    if len(col) == 0:
        return np.zeros(0, dtype="<i8"), b""
    offsets = np.frombuffer(col.buffers()[1], dtype="<i8")[col.offset : col.offset + len(col) + 1]
    data = memoryview(col.buffers()[2])[offsets[0] : offsets[-1]]
    return np.diff(offsets).astype("<i8"), data


def session_digest(splits: Mapping[str, Any]) -> tuple[str, dict[str, dict[str, int]]]:
    """The hash of a side's whole output, and each split's session and event counts.

    Canonical form, per split in train, valid, test order: the split's name; its session count;
    the sessions' ids (byte lengths, then bytes) in id order; each session's event count; every
    event's item id (byte lengths, then bytes) and timestamp, session by session in the order the
    side put them. The events must come sorted by session id (each session's events together):
    a side that does not sort raises ``ValueError``.
    """
    import numpy as np
    import pyarrow.compute as pc

    h = hashlib.sha256()
    counts: dict[str, dict[str, int]] = {}
    for name in SPLITS:
        sid, items, ts = _arrow_columns(splits[name])
        n = len(sid)
        if n > 1 and pc.any(pc.less(sid.slice(1), sid.slice(0, n - 1))).as_py():
            raise ValueError(f"{name}: events are not sorted by session id")
        new = np.ones(n, dtype=bool)
        if n > 1:
            new[1:] = pc.not_equal(sid.slice(1), sid.slice(0, n - 1)).to_numpy(zero_copy_only=False)
        starts = np.flatnonzero(new)
        lengths = np.diff(np.append(starts, n)).astype("<i8")
        ids_len, ids = _string_bytes(sid.take(starts)) if n else _string_bytes(sid)
        item_len, item_bytes = _string_bytes(items)
        h.update(f"split:{name}:{len(starts)}\n".encode())
        for part in (ids_len, ids, lengths, item_len, item_bytes, ts):
            h.update(part.tobytes() if hasattr(part, "dtype") else part)
        counts[name] = {"sessions": len(starts), "events": n}
    return h.hexdigest()[:16], counts
