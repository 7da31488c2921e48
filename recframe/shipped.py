"""Where the files shipped inside the package live: the Hydra configs and the dbt project.

Both folders sit at the top of the repository (``conf/``, ``dbt/``) and are mapped into the wheel
as the packages ``recframe.conf`` and ``recframe.dbt_project`` (``[tool.setuptools.package-dir]``).
They are found one way only, as package resources, whether recframe is installed from a wheel or
in editable mode. This module imports nothing heavy: Hydra's search-path plugin reads it at start.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

CONFIG_MODULE = "recframe.conf"
DBT_PROJECT_MODULE = "recframe.dbt_project"


def config_search_path() -> str:
    """The primary config folder as Hydra names it (``pkg://recframe.conf``)."""
    return f"pkg://{CONFIG_MODULE}"


def dbt_project_dir() -> Path:
    """The dbt project shipped with recframe (read-only: runs copy it, see ``transform.prepare_project``)."""
    try:
        path = Path(str(resources.files(DBT_PROJECT_MODULE)))
    except ModuleNotFoundError:
        path = None
    if path is None or not (path / "dbt_project.yml").is_file():
        from recframe.interfaces import RecframeError  # pandas: only on this error path

        raise RecframeError("recframe's dbt project is missing: reinstall recframe (pip install recframe)")
    return path
