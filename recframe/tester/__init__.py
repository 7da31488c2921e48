"""Testers: score a fitted model on the test split, run behavioural tests, and gate deployment.

Implementations (config group ``tester``): ``reclist`` (RecList behavioural suite),
``metrics`` (accuracy vs popularity only), ``none`` (skip testing). Modules are imported lazily by
Hydra's ``_target_``, so importing this package costs nothing.
"""
