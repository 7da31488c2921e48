"""The tester inside the real Pipeline: report files in the run dir, the gate blocking deploy, force."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recframe.interfaces import Dataset, DataSource, GateError
from recframe.pipeline import Pipeline
from recframe.tester.reclist_suite import ReclistTester

GATES = {"hr@20": ">= 1.2 * baseline_pop"}


class FixtureSource(DataSource):
    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def load(self, work_dir: Path) -> Dataset:
        return self.dataset


def _pipeline(run_dir: Path, dataset: Dataset, model, force: bool = False, deployer=None) -> Pipeline:
    from tests.helpers.toy import RecordingDeployer

    return Pipeline(
        datasource=FixtureSource(dataset),
        model=model,
        tester=ReclistTester(gates=GATES, n_samples=200),
        deployer=deployer or RecordingDeployer(force=force),
        run_dir=run_dir,
        progress=False,
    )


def test_good_model_deploys_with_full_report(tmp_path: Path, dataset: Dataset, model_classes) -> None:
    _pipeline(tmp_path, dataset, model_classes["markov"]()).run()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["model"] == "markov" and metrics["hr@20"] > metrics["baseline_pop"]["hr@20"]
    assert json.loads((tmp_path / "gates.json").read_text())["passed"] is True
    assert (tmp_path / "report" / "report.json").exists() and (tmp_path / "report" / "index.html").exists()


def test_gate_stops_bad_model_and_force_overrides(tmp_path: Path, dataset: Dataset, model_classes) -> None:
    RandomModel = model_classes["random"]  # noqa: N806

    with pytest.raises(GateError, match=r"gate hr@20 >= 1.2 \* baseline_pop FAILED: value"):
        _pipeline(tmp_path / "a", dataset, RandomModel()).run()
    assert not (tmp_path / "a" / "deploy.json").exists()

    _pipeline(tmp_path / "b", dataset, RandomModel(), force=True).run()
    report = json.loads((tmp_path / "b" / "report" / "report.json").read_text())
    assert any("deployer.force=true" in w for w in report["warnings"])
    assert "deployer.force=true" in (tmp_path / "b" / "report" / "index.html").read_text()
    assert report["metadata"]["reclist"] == "RecframeSuite"  # the pipeline's edit kept RecList's layout


def test_gates_do_not_fail_a_run_that_deploys_nothing(tmp_path: Path, dataset: Dataset, model_classes) -> None:
    from recframe.deployer.none import NoneDeployer

    _pipeline(tmp_path, dataset, model_classes["random"](), deployer=NoneDeployer()).run()
    assert json.loads((tmp_path / "gates.json").read_text())["passed"] is False
    assert (tmp_path / "metrics.json").exists()
