"""Session-based kNN models, one module per option: ``sknn``, ``vsknn``, ``stan``, ``vstan``.

They share :mod:`~recframe.model.knn.base` (fit, batched search, artifacts), the sparse session
index (:mod:`~recframe.model.knn.index`) and V-SKNN's position weights and vote decays
(:mod:`~recframe.model.knn.weights`). Each module is imported only when its config selects it.
"""
