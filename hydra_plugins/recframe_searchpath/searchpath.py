"""Adds the configs of installed recframe plugins to Hydra's search path.

Hydra discovers this class by scanning the ``hydra_plugins`` namespace package and calls it for
every config search path it builds, so plugins reach ``@hydra.main``, ``hydra.compose`` and the
``recframe`` command through one route. It acts only where recframe's own configs are the primary
configs: other Hydra apps in the same environment keep their search path unchanged.

Hydra imports this module whenever any Hydra app starts, so it imports only Hydra's base classes;
recframe's light modules and the entry points are read when a search path is built.
"""

from __future__ import annotations

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

PROVIDER = "recframe-plugin"


class RecframeSearchPathPlugin(SearchPathPlugin):
    """Appends ``pkg://VALUE`` for each ``recframe.configs`` entry point (see :mod:`recframe.plugins`)."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        from recframe.shipped import config_search_path

        if not any(element.path == config_search_path() for element in search_path.get_path()):
            return
        from recframe.plugins import plugin_search_paths

        for path in plugin_search_paths():
            search_path.append(provider=PROVIDER, path=path)
