"""How installed packages add their own configs (and so their own components) to recframe.

A plugin package declares an entry point in the ``recframe.configs`` group whose value is the
importable package holding its config groups, e.g.::

    [project.entry-points."recframe.configs"]
    my_plugin = "my_plugin.conf"

recframe then adds ``pkg://my_plugin.conf`` to Hydra's search path, so ``model=my_model`` finds
``my_plugin/conf/model/my_model.yaml`` whose ``_target_`` names the plugin's class. (A Hydra
``SearchPathPlugin`` in the ``hydra_plugins`` namespace works too; this route needs no Hydra code.)
"""

from __future__ import annotations

from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "recframe.configs"


def plugin_config_packages() -> list[str]:
    """Config packages announced by installed plugins, sorted for a stable search order."""
    return sorted({ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)})


def hydra_search_path_overrides() -> list[str]:
    """A ``hydra.searchpath`` override adding every plugin's config package (empty when none)."""
    pkgs = plugin_config_packages()
    if not pkgs:
        return []
    return ["hydra.searchpath=[" + ",".join(f"pkg://{p}" for p in pkgs) + "]"]
