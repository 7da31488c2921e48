"""The one atomic-write helper: whole files or nothing, no temp files left, old content kept on failure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recframe import atomic


def test_text_bytes_json_replace_whole(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.json"
    atomic.write_text(target, "old")
    atomic.write_json(target, {"x": np.int64(3), "y": np.array([1.5]), "p": Path("/tmp")})
    assert json.loads(target.read_text()) == {"x": 3, "y": [1.5], "p": "/tmp"}
    atomic.write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert not list(tmp_path.rglob("*.tmp"))


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    atomic.write_text(target, "previous")
    with pytest.raises(TypeError):
        atomic.write_json(target, {"bad": object()})
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "previous"
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_directory_swapped_as_a_whole(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with atomic.atomic_dir(target) as d:
        (d / "a").write_text("1")
    with pytest.raises(RuntimeError), atomic.atomic_dir(target) as d:
        (d / "a").write_text("2")
        raise RuntimeError("interrupted")
    assert (target / "a").read_text() == "1"
    with atomic.atomic_dir(target) as d:
        (d / "b").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
