"""Recommender models: ``pop`` and ``hybrid`` here, the kNN family in ``knn``, neural sequence models in ``seq``.

Each module is imported only when its config selects it.
"""
