"""recframe: session-based recommenders on the modern data stack.

Raw events -> warehouse -> dbt -> one query -> train -> behavioural tests -> endpoint, each step a
swappable component chosen by a Hydra config group. Use it from the command line
(``python -m recframe model=gru``) or from Python::

    import recframe
    result = recframe.run(["model=pop", "deployer=none"], run_dir="outputs/my_run")

The public names are loaded on first use (PEP 562), so ``import recframe`` imports neither Hydra nor
torch: serving code, e.g. the SageMaker container, imports only the modules it uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "build_pipeline": "recframe.app",
    "compose": "recframe.app",
    "run": "recframe.app",
    "ConfigError": "recframe.interfaces",
    "DataError": "recframe.interfaces",
    "DataSource": "recframe.interfaces",
    "Dataset": "recframe.interfaces",
    "Deployer": "recframe.interfaces",
    "Deployment": "recframe.interfaces",
    "FitContext": "recframe.interfaces",
    "GateError": "recframe.interfaces",
    "Model": "recframe.interfaces",
    "RecframeError": "recframe.interfaces",
    "Tester": "recframe.interfaces",
    "TestResult": "recframe.interfaces",
    "Tracker": "recframe.interfaces",
    "Pipeline": "recframe.pipeline",
    "RunResult": "recframe.pipeline",
}

__all__ = [
    "ConfigError",
    "DataError",
    "DataSource",
    "Dataset",
    "Deployer",
    "Deployment",
    "FitContext",
    "GateError",
    "Model",
    "Pipeline",
    "RecframeError",
    "RunResult",
    "TestResult",
    "Tester",
    "Tracker",
    "build_pipeline",
    "compose",
    "run",
    "__version__",
]

if TYPE_CHECKING:  # for type checkers and editors; at run time the names load lazily
    from recframe.app import build_pipeline, compose, run
    from recframe.interfaces import (
        ConfigError,
        DataError,
        Dataset,
        DataSource,
        Deployer,
        Deployment,
        FitContext,
        GateError,
        Model,
        RecframeError,
        Tester,
        TestResult,
        Tracker,
    )
    from recframe.pipeline import Pipeline, RunResult


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'recframe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
