"""recframe: session-based recommenders on the modern data stack.

Raw events -> warehouse -> dbt -> one query -> train -> behavioural tests -> endpoint, each step a
swappable component chosen by a Hydra config group. Use it from the command line
(``python -m recframe model=gru``) or from Python::

    import recframe
    result = recframe.run(["model=pop", "deployer=none"], run_dir="outputs/my_run")
"""

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

__version__ = "0.1.0"

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
    "Tester",
    "TestResult",
    "Tracker",
    "build_pipeline",
    "compose",
    "run",
    "__version__",
]
