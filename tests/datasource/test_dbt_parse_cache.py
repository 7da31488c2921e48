"""The kept dbt manifest: handed back while its inputs are unchanged, a fresh parse otherwise."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from recframe.datasource import dbt_parse_cache as cache


@dataclasses.dataclass
class FakeManifest:  # the shape the cache relies on: a dataclass, private fields rebuilt on demand
    nodes: dict
    _lookup: object = None


def _project(root: Path) -> Path:
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text("name: p\n")
    (root / "models" / "a.sql").write_text("select 1\n")
    (root / "target").mkdir()
    (root / "target" / "noise.json").write_text("{}")  # dbt's own output: not an input
    return root


def _parse(calls: list[int]):
    def parse() -> FakeManifest:
        calls.append(1)
        return FakeManifest({"model.a": len(calls)}, _lookup=object())

    return parse


def test_the_kept_manifest_comes_back_until_an_input_changes(tmp_path, monkeypatch):
    project = _project(tmp_path / "project")
    calls: list[int] = []
    monkeypatch.delenv("RECFRAME_DBT_THREADS", raising=False)

    def get(cli=("v1",), env=None):
        return cache.parsed_manifest(tmp_path, project, list(cli), env or {}, _parse(calls))

    first = get()
    again = get()
    assert calls == [1] and again.nodes == first.nodes and again._lookup is None  # caches rebuilt
    (project / "target" / "noise.json").write_text('{"x": 1}')
    assert get().nodes == first.nodes and len(calls) == 1

    changes = [
        lambda: (project / "models" / "a.sql").write_text("select 2\n"),  # a project file
        lambda: (project / "models" / "b.sql").write_text("select 3\n"),  # a new one
        lambda: monkeypatch.setenv("RECFRAME_DBT_THREADS", "3"),  # a variable env_var() may read
    ]
    for n, change in enumerate(changes, start=2):
        change()
        assert get().nodes == {"model.a": n} and len(calls) == n  # parsed again...
        assert get().nodes == {"model.a": n} and len(calls) == n  # ...and kept
    assert get(cli=("v2",)).nodes == {"model.a": 5}  # other vars or target
    assert get(cli=("v2",), env={"RECFRAME_ETL_ID": "x"}).nodes == {"model.a": 6}  # the parse's env
    monkeypatch.setenv("UNRELATED_VARIABLE", "1")
    assert get(cli=("v2",), env={"RECFRAME_ETL_ID": "x"}).nodes == {"model.a": 6}


@pytest.mark.parametrize("damage", [b"", b"not a pickle", None])
def test_a_damaged_or_unwritable_cache_means_a_parse(tmp_path, damage):
    project = _project(tmp_path / "project")
    calls: list[int] = []
    where = tmp_path / "state"
    where.mkdir()
    if damage is None:  # the cache cannot be written: the parse's manifest is still returned
        (where / cache.CACHE_FILE).mkdir()
    else:
        (where / cache.CACHE_FILE).write_bytes(damage)
    got = cache.parsed_manifest(where, project, [], {}, _parse(calls))
    assert got.nodes == {"model.a": 1} and calls == [1]
    if damage is not None:  # replaced by a good one
        assert cache.parsed_manifest(where, project, [], {}, _parse(calls)).nodes == {"model.a": 1}
        assert calls == [1]
