"""The examples run as users run them (examples/library_usage.py) and point at configs that exist."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

from tests.helpers.cli import ROOT

EXAMPLES = ROOT / "examples"


def test_library_usage_runs_all_four_ways_in(tmp_path):
    env_home = tmp_path / "home"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "library_usage.py"), "--quick", "--out", str(tmp_path / "out")],
        cwd=tmp_path,  # not the repository: the example must work wherever recframe is installed
        env={**os.environ, "RECFRAME_HOME": str(env_home)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert 0 < summary["composed_mrr@20"] <= 1 and 0 < summary["objects_mrr@20"] <= 1
    assert summary["tester_passed"] == 1.0
    for part in ("[1]", "[2]", "[3]", "[4]"):
        assert part in proc.stdout
    assert (tmp_path / "out" / "composed" / "metrics.json").exists()
    assert (tmp_path / "out" / "sknn_artifact" / "checksums.json").exists()


def test_sweep_example_names_only_existing_options(compose_config):
    """Every ``group=option`` the sweep example mentions composes, as the CLI would compose it."""
    text = (EXAMPLES / "sweep" / "README.md").read_text() + (EXAMPLES / "sweep" / "run_sweep.sh").read_text()
    found = 0
    for group, options in re.findall(
        r"(?<![\w.])(hparams_search|hydra/launcher|model|tester|deployer|trainer)=([\w,]+)", text
    ):
        for option in options.split(","):
            cfg = compose_config(f"{group}={option}")
            assert cfg.hydra.runtime.choices[group] == option, f"{group}={option}"
            found += 1
    assert found >= 3, "the pattern no longer matches the example's options"


def test_library_example_help_explains_itself():
    out = subprocess.run([sys.executable, str(EXAMPLES / "library_usage.py"), "--help"], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0 and "--quick" in out.stdout


def test_docs_build_strict(tmp_path):
    """``mkdocs build --strict``: every nav page exists, links resolve, the generated references render."""
    pytest.importorskip("mkdocs", reason="pip install 'recframe[docs]'")
    pytest.importorskip("mkdocstrings_handlers.python", reason="pip install 'recframe[docs]'")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "configuration" / "index.html").exists()
    api = (tmp_path / "site" / "reference" / "api" / "recframe" / "index.html").read_text()
    assert "recframe.pipeline" in api and "Pipeline" in api, "the API reference rendered no members"


def test_configuration_reference_covers_every_group():
    """The generated configuration reference has a section per config group and every launcher."""
    spec = importlib.util.spec_from_file_location(
        "gen_config_reference", ROOT / "docs" / "hooks" / "gen_config_reference.py"
    )
    gen = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = gen  # dataclasses look their module up there
    spec.loader.exec_module(gen)
    text = gen.build_page()
    for group_dir in sorted(
        p for p in (ROOT / "conf").iterdir() if p.is_dir() and p.name not in ("hydra", "local", "__pycache__")
    ):
        assert f"## `{group_dir.name}`" in text, group_dir.name
        for option in group_dir.glob("*.yaml"):
            assert f"### `{group_dir.name}={option.stem}`" in text, option
    for launcher in (ROOT / "conf" / "hydra" / "launcher").glob("*.yaml"):
        assert f"`hydra/launcher={launcher.stem}`" in text, launcher
    sknn_k = "| `k` | `auto` | int >= 1 \\| auto: neighbours that vote;"  # conf/model/sknn.yaml
    assert sknn_k.replace(">", "&gt;") in text
