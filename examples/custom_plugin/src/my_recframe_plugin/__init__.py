"""An example recframe plugin: one model class and its config, installed as a separate package.

Nothing in recframe names this package. Its ``recframe.configs`` entry point (``pyproject.toml``)
is the one thing recframe needs: recframe's Hydra search-path plugin reads it whenever recframe's
configs are composed (the ``recframe`` command, ``recframe.compose``, plain ``hydra.compose``).
"""

from my_recframe_plugin.model import TransitionModel

__all__ = ["TransitionModel"]
