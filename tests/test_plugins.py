"""A separate package adds a model to recframe: examples/custom_plugin, installed, selected by name.

The package is pip-installed (no dependencies, no build isolation, so no network) into a folder under
the test's tmp dir and put on the path, rather than into the shared virtual environment: other
test runs in the same environment never see it, and nothing is left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli import ROOT, fast_overrides, run_cli

PLUGIN_SRC = ROOT / "examples" / "custom_plugin"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install --no-deps --target SITE examples/custom_plugin`` (from a copy: no build/ in the repo)."""
    work = tmp_path_factory.mktemp("plugin")
    src = work / "custom_plugin"
    shutil.copytree(PLUGIN_SRC, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = work / "site"
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
           "--target", str(site), str(src)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (site / "my_recframe_plugin" / "conf" / "model" / "my_model.yaml").exists()
    return site


def with_site(site: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def test_the_installed_plugin_model_is_selected_by_name_on_the_command_line(plugin_site, tmp_path):
    run_dir = tmp_path / "run"
    args = ["model=my_model", *fast_overrides(tmp_path / "data"), f"hydra.run.dir={run_dir}", "run.progress=false"]
    proc = run_cli(args, tmp_path / "home", extra_env=with_site(plugin_site))
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["model"] == "my_model"
    # the synthetic sessions mostly go item -> item+1: a transition model must beat popularity clearly
    assert metrics["mrr@20"] > 2 * metrics["baseline_pop"]["mrr@20"]
    artifact = json.loads((run_dir / "model" / "model.json").read_text())
    assert artifact["target"] == "my_recframe_plugin.model.TransitionModel"


@pytest.mark.slow
def test_a_bad_plugin_setting_fails_fast_with_one_line(plugin_site, tmp_path):
    args = ["model=my_model", "model.window=0", *fast_overrides(tmp_path / "data")]
    proc = run_cli(args, tmp_path / "home", extra_env=with_site(plugin_site), timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("recframe: error: invalid config model.window=0")


@pytest.mark.slow
def test_without_the_plugin_the_option_is_unknown(tmp_path):
    import importlib.util

    if importlib.util.find_spec("my_recframe_plugin") is not None:
        pytest.skip("the example plugin is installed in this environment")
    proc = run_cli(["model=my_model", *fast_overrides(tmp_path / "data")], tmp_path / "home", timeout=120)
    assert proc.returncode == 2 and "my_model" in proc.stderr


def test_the_plugin_model_runs_from_python_and_reloads_from_its_artifact(plugin_site, tmp_path, monkeypatch):
    import importlib

    import recframe
    from recframe.plugins import plugin_config_packages

    monkeypatch.syspath_prepend(str(plugin_site))
    importlib.invalidate_caches()
    monkeypatch.setenv("RECFRAME_HOME", str(tmp_path / "home"))
    assert "my_recframe_plugin.conf" in plugin_config_packages()  # route 1: the entry point

    overrides = ["model=my_model", "model.window=1", "run.progress=false", *fast_overrides(tmp_path / "data")]
    result = recframe.run(overrides, run_dir=tmp_path / "run")
    assert result.metrics["model"] == "my_model"

    model = recframe.Model.load(tmp_path / "run" / "model")
    assert type(model).__name__ == "TransitionModel" and model.window == 1
    known = model.vocab.encode(["sku3"])[0]
    top = model.vocab.decode(model.score_next([known]).argmax(axis=1))
    assert top == ["sku4"]  # learned item -> item+1


PLAIN_HYDRA = """
import sys

import hydra
from hydra import compose, initialize_config_dir, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

with initialize_config_module(config_module="recframe.conf", version_base="1.3"):
    print("compose", compose("config", overrides=["model=my_model"]).model._target_)
with initialize_config_dir(config_dir=sys.argv.pop(1), version_base="1.3"):  # another Hydra app
    paths = [source.path for source in GlobalHydra.instance().config_loader().get_sources()]
    print("other app:", "sees the plugin" if "pkg://my_recframe_plugin.conf" in paths else "untouched")


@hydra.main(config_path="pkg://recframe.conf", config_name="config", version_base="1.3")
def app(cfg):
    print("main", cfg.model._target_)


app()
"""


def test_plain_hydra_sees_the_plugin_through_recframes_search_path_plugin(plugin_site, tmp_path):
    """``hydra.compose`` and ``@hydra.main`` over recframe's configs find the plugin's option; the
    plugin ships no Hydra code of its own, so recframe's SearchPathPlugin is what adds it."""
    assert not (plugin_site / "hydra_plugins").exists()
    script = tmp_path / "plain_hydra.py"
    script.write_text(PLAIN_HYDRA)
    other = tmp_path / "other_app"
    other.mkdir()
    args = [sys.executable, str(script), str(other), "model=my_model", f"hydra.run.dir={tmp_path / 'run'}"]
    env = {**os.environ, **with_site(plugin_site)}
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    target = "my_recframe_plugin.model.TransitionModel"
    assert proc.stdout.split("\n")[:3] == [f"compose {target}", "other app: untouched", f"main {target}"]
