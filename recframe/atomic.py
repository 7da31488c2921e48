"""Atomic writes: a reader sees the old file or the new one, never half of one.

Every file recframe writes into a run directory (reports, metrics, manifests, the model artifact,
leaderboards) goes through here. The new content is written to a temporary name in the *same*
folder (so the final rename never crosses a file system), flushed to disk with ``fsync``, and then
moved over the target with :func:`os.replace`, which is atomic on POSIX and Windows. A write that
fails half-way (disk full, a file over a size limit, an interrupt) removes its temporary file and
leaves the previous version in place.

Temporary names end in ``.tmp`` and carry a random part, so two processes writing the same target
at once cannot clobber each other's half-written file; the last rename wins, whole.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Persist a rename (POSIX only: a directory cannot be opened for fsync on Windows)."""
    if os.name == "posix":
        _fsync(path)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block ends without error, move it into place.

    For writers that want a file name (``DataFrame.to_parquet``, ``OmegaConf.save``, ``torch.save``).
    The parent folder is created if needed. On any exception the temporary file is removed and
    ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_bytes(path: str | Path, data: bytes | bytearray | memoryview) -> Path:
    """Write ``data`` to ``path`` atomically; return ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; return ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return path


def json_default(obj: Any) -> Any:
    """JSON for the values recframe's reports hold besides plain Python: numpy scalars and arrays,
    pandas timestamps, paths. Anything else is a bug in the caller, so it raises ``TypeError``."""
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    if hasattr(obj, "tolist"):  # numpy scalars and arrays alike
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(
    path: str | Path, obj: Any, indent: int | None = 2, default: Callable[[Any], Any] | None = json_default
) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically; return ``path``.

    The text is built before anything touches the disk, so an unserialisable value leaves no file.
    """
    return write_text(path, json.dumps(obj, indent=indent, default=default))


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``path``; on success it replaces ``path`` as a whole.

    For artifacts made of several files that must match each other (the model's weights, vocabulary
    and checksums). An existing ``path`` is moved aside first and removed once the new folder is in
    place; on failure the temporary folder is removed and ``path`` keeps its old content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    old = path.with_name(path.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file():
                _fsync(f)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        path.replace(old)
    tmp.replace(path)
    _fsync_dir(path.parent)
    shutil.rmtree(old, ignore_errors=True)
