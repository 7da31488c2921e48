"""How installed packages add their own configs (and so their own components) to recframe.

A plugin package declares an entry point in the ``recframe.configs`` group whose value is the
importable package holding its config groups, e.g.::

    [project.entry-points."recframe.configs"]
    my_plugin = "my_plugin.conf"

recframe's Hydra ``SearchPathPlugin`` (:mod:`hydra_plugins.recframe_searchpath.searchpath`, shipped
in the wheel) appends ``pkg://my_plugin.conf`` to the search path of every Hydra app that composes
recframe's configs, so ``model=my_model`` finds ``my_plugin/conf/model/my_model.yaml`` whose
``_target_`` names the plugin's class: on the command line, in :func:`recframe.compose`, and in plain
``hydra.compose`` / ``@hydra.main`` alike.
"""

from __future__ import annotations

from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "recframe.configs"


def plugin_config_packages() -> list[str]:
    """Config packages announced by installed plugins, sorted for a stable search order."""
    return sorted({ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)})


def plugin_search_paths() -> list[str]:
    """The ``pkg://`` search-path entries of every installed plugin's configs."""
    return [f"pkg://{pkg}" for pkg in plugin_config_packages()]
