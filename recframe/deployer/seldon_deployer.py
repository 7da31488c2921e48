"""``deployer=seldon``: MLServer locally, Seldon Core manifests for Kubernetes (work in progress)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recframe.interfaces import Deployer, Deployment, RecframeError


class SeldonDeployer(Deployer):
    """Placeholder until the Seldon deployer lands: composes, then refuses in ``check``."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.keep_alive = bool(settings.get("keep_alive", False))
        self.force = bool(settings.get("force", False))

    def check(self) -> None:
        raise RecframeError("deployer=seldon is not implemented yet; use deployer=local")

    def deploy(self, artifact_dir: Path, run_dir: Path) -> Deployment:
        self.check()
        raise AssertionError("unreachable")

    def teardown(self) -> None:
        """Nothing was started."""
