"""An example recframe plugin: one model class and its config, installed as a separate package.

Nothing in recframe names this package. It is found in two independent ways (either is enough):

* the ``recframe.configs`` entry point in ``pyproject.toml`` (recframe reads it at startup), and
* :mod:`hydra_plugins.my_recframe_plugin.searchpath`, a Hydra ``SearchPathPlugin`` (Hydra finds it
  by scanning the ``hydra_plugins`` namespace), which also serves plain Hydra apps.
"""

from my_recframe_plugin.model import TransitionModel

__all__ = ["TransitionModel"]
