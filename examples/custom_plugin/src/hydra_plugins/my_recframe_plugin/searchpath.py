"""Route 2: a Hydra SearchPathPlugin adding this package's configs to every Hydra app's search path.

Hydra imports every module under ``hydra_plugins`` when it starts, so this one imports only Hydra's
plugin base class: the model code is imported when a config names it, not here.
"""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class MyRecframePluginSearchPath(SearchPathPlugin):
    """Appends ``pkg://my_recframe_plugin.conf`` (where ``model/my_model.yaml`` lives)."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="my-recframe-plugin", path="pkg://my_recframe_plugin.conf")
