"""recframe's dbt project, shipped in the wheel as ``recframe.dbt_project`` (SQL and YAML only).

This file exists so setuptools packages the folder. From the repository root this folder is also
importable as ``dbt`` and would shadow dbt-core (a pkgutil namespace package): extending ``__path__``
the way dbt-core's own ``dbt/__init__.py`` does keeps ``import dbt.cli`` working from here.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
