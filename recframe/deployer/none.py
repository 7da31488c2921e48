"""``deployer=none``: train and test without serving (e.g. sweeps, CI of the data path)."""

from __future__ import annotations

from pathlib import Path

from recframe.interfaces import Deployer, Deployment


class NoneDeployer(Deployer):
    """Deploys nothing; the pipeline records a skipped deployment in ``deploy.json``."""

    serves = False

    def __init__(self, keep_alive: bool = False, force: bool = False) -> None:
        self.keep_alive = bool(keep_alive)
        self.force = bool(force)

    def deploy(self, artifact_dir: Path, run_dir: Path) -> Deployment:
        return Deployment(url="", smoke={"passed": True, "skipped": True}, details={"deployer": "none"})

    def teardown(self) -> None:
        """Nothing to stop."""
