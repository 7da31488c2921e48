"""The pipeline without Hydra: steps, the run-directory contract, resume, gates."""

from __future__ import annotations

import json

import pytest

from recframe.interfaces import ConfigError, GateError
from recframe.model.pop import PopModel
from recframe.pipeline import Pipeline
from tests.helpers.toy import RecordingDeployer, ToySource, ToyTester


def make(run_dir, **kw):
    args = dict(datasource=ToySource(), model=PopModel(), tester=ToyTester(), deployer=RecordingDeployer())
    args.update(kw)
    return Pipeline(run_dir=run_dir, **args)


def test_full_run_writes_the_run_directory_contract(tmp_path):
    result = make(tmp_path).run()
    for path in ("data/manifest.json", "model/checksums.json", "report/report.json", "metrics.json", "deploy.json"):
        assert (tmp_path / path).exists(), path
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["model"] == "pop" and "baseline_pop" in metrics
    assert 0 < metrics["val_mrr@20"] <= 1, "sweeps optimise the validation split, never test"
    assert json.loads((tmp_path / "deploy.json").read_text())["url"].startswith("http://127.0.0.1")
    assert set(result.timings) == {"data", "train", "test", "deploy"}


def test_later_steps_resume_from_a_finished_run(tmp_path):
    make(tmp_path / "first").run()
    deployer = RecordingDeployer()
    result = make(tmp_path / "second", datasource=None, model=None, deployer=deployer,
                  steps=["test", "deploy"], resume_from=tmp_path / "first").run()  # fmt: skip
    assert deployer.deployed == [tmp_path / "first" / "model"]
    assert deployer.torn_down == 1
    assert result.metrics["model"] == "pop"
    assert not (tmp_path / "second" / "data").exists()


def test_steps_run_in_pipeline_order_whatever_the_order_given(tmp_path):
    p = make(tmp_path, steps=["test", "data", "train"])
    assert p.steps == ["data", "train", "test"]


def test_unknown_step_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="steps"):
        make(tmp_path, steps=["data", "fly"])


def test_failed_gate_stops_deploy_and_force_overrides_it(tmp_path):
    deployer = RecordingDeployer()
    with pytest.raises(GateError, match="hr@5=.* < 2"):
        make(tmp_path / "a", tester=ToyTester(min_hr=2.0), deployer=deployer).run()
    assert deployer.deployed == []
    forced = RecordingDeployer(force=True)
    make(tmp_path / "b", tester=ToyTester(min_hr=2.0), deployer=forced).run()
    assert len(forced.deployed) == 1
    report = json.loads((tmp_path / "b" / "report" / "report.json").read_text())
    assert any("deployer.force=true" in w for w in report["warnings"])


def test_gate_verdict_is_honoured_when_deploying_a_resumed_run(tmp_path):
    with pytest.raises(GateError):
        make(tmp_path / "a", tester=ToyTester(min_hr=2.0), deployer=RecordingDeployer()).run()
    deployer = RecordingDeployer()
    with pytest.raises(GateError):
        make(tmp_path / "b", steps=["deploy"], resume_from=tmp_path / "a", deployer=deployer).run()
    assert deployer.deployed == []
