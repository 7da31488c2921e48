"""Experiment trackers; each module is imported only when its config selects it."""
