"""recframe's Hydra plugins (Hydra imports every module under the ``hydra_plugins`` namespace)."""
