"""The installable package: a light ``import recframe``, and a wheel that carries what runs outside the repository.

The wheel test builds recframe from a copy of the sources (no network, no build isolation), unpacks
it into a folder, and composes and instantiates a config in a fresh interpreter that is kept from
seeing the repository or the editable install: the configs, the dbt project and the Hydra plugin
must all come from the wheel.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import recframe
from tests.helpers.cli import ROOT, cli_env

HEAVY = ("torch", "lightning", "hydra", "omegaconf", "pandas", "duckdb")


def fresh(code: str, tmp_path: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          cwd=tmp_path, env=cli_env(tmp_path / "home"))  # fmt: skip


def test_import_recframe_imports_no_framework(tmp_path):
    code = f"import json, sys, recframe; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    proc = fresh(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_the_search_path_plugin_module_imports_only_hydra(tmp_path):
    """Hydra imports it in every Hydra app at start: it must not pull recframe's frameworks in."""
    code = (
        "import json, sys\nimport hydra_plugins.recframe_searchpath.searchpath\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules and m not in ('hydra', 'omegaconf')]))"
    )
    proc = fresh(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_public_names_load_on_first_use():
    from recframe.interfaces import Model
    from recframe.pipeline import Pipeline

    assert recframe.Model is Model and recframe.Pipeline is Pipeline
    for name in recframe.__all__:
        assert getattr(recframe, name) is not None, name
        assert name in dir(recframe)
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = recframe.no_such_name


def test_pyproject_lists_every_package():
    """setuptools ships only the packages listed: a new subpackage missing here would be left out of the wheel."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("recframe", "hydra_plugins")
        for init in (ROOT / top).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert on_disk <= listed, sorted(on_disk - listed)


WHEEL_CHECK = """
import json, sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path_hooks[:] = [h for h in sys.path_hooks if "editable" not in repr(h).lower()]
sys.path_importer_cache.clear()
sys.path[:] = [p for p in sys.path if p not in ("", {root!r})]
sys.path.insert(0, {site!r})
import recframe
from recframe.app import compose, instantiate_parts
from recframe.datasource.transform import packaged_project_dir
cfg = compose(["model=pop", "deployer=none"])
parts = instantiate_parts(cfg)
print(json.dumps({{
    "recframe": recframe.__file__,
    "dbt": str(packaged_project_dir()),
    "model": type(parts["model"]).__name__,
    "plugin": [m.__file__ for n, m in sys.modules.items() if n == "hydra_plugins.recframe_searchpath.searchpath"],
}}))
"""


@pytest.mark.slow
def test_the_wheel_runs_outside_the_repository(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "target", "logs", "dbt_packages", "*.egg-info")
    for name in ("recframe", "conf", "dbt", "hydra_plugins"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
           "-w", str(tmp_path / "dist"), str(src)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("recframe-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ("recframe/conf/config.yaml", "recframe/conf/model/pop.yaml", "recframe/dbt_project/dbt_project.yml",
                 "hydra_plugins/recframe_searchpath/searchpath.py", "recframe/deployer/predictor.py"):  # fmt: skip
        assert path in names, path
    assert not any(n.startswith(("conf/", "dbt/")) for n in names)

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    proc = fresh(WHEEL_CHECK.format(root=str(ROOT), site=str(site)), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["recframe"].startswith(str(site)) and out["dbt"].startswith(str(site))
    assert out["model"] == "PopModel"
    assert len(out["plugin"]) == 1 and out["plugin"][0].startswith(str(site))
