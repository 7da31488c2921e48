"""Trackers, all offline: Comet's offline archive, a local MLflow store, CSV; secrets never leak.

A canary secret is planted in three places a careless tracker would pick it up from: a config key
(``datasource.password``), the command line (Comet parses argv by default) and a secret-looking
environment variable (Comet logs env details by default). Each tracker's outputs are then searched
byte for byte.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from recframe.app import redacted_params
from recframe.pipeline import Pipeline
from tests.helpers.toy import RecordingDeployer, ToySource, ToyTester

CANARY = "canary-s3cr3t-7f3a9"


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plant the canary in argv and the environment, and make sure no Comet key is around."""
    monkeypatch.delenv("COMET_API_KEY", raising=False)
    monkeypatch.setenv("COMET_START_ONLINE", "0")
    monkeypatch.setenv("RECFRAME_TEST_DB_PASSWORD", CANARY)
    monkeypatch.setattr(sys, "argv", ["recframe", f"datasource.password={CANARY}", "tracker=comet"])


def params_with_secret(in_value: bool = True) -> dict:
    """Redacted params of a config holding the canary under a secret key (and, optionally, inside a
    DSN under an innocent key: only the env-value scrubbing of the Comet and MLflow trackers catches it)."""
    source = {"_target_": "x.Source", "password": CANARY}
    if in_value:
        source["dsn"] = f"duckdb://u:{CANARY}@h/db"
    cfg = OmegaConf.create(
        {
            "datasource": source,
            "model": {"_target_": "x.Model", "hidden_size": 64},
            "seed": 42,
        }
    )
    return redacted_params(cfg)


def assert_no_canary(root: Path) -> None:
    """No file under ``root`` (zip members included) contains the canary."""
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        assert CANARY.encode() not in data, path
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as z:
                for name in z.namelist():
                    assert CANARY.encode() not in z.read(name), f"{path}:{name}"


def read_offline_archive(zip_path: Path) -> tuple[dict, list[dict], dict[str, bytes]]:
    """experiment.json, the message log, and the uploaded assets by their file name."""
    with zipfile.ZipFile(zip_path) as z:
        experiment = json.loads(z.read("experiment.json"))
        messages = [json.loads(line) for line in z.read("messages.json").decode().splitlines() if line.strip()]
        assets = {
            m["payload"]["additional_params"]["fileName"]: z.read(m["payload"]["file_path"])
            for m in messages
            if m["type"] == "file_upload"
        }
    return experiment, messages, assets


def test_comet_without_key_writes_an_offline_archive_with_params_metrics_and_assets(tmp_path, secret_env):
    from recframe.tracker.comet import CometTracker

    run_dir = tmp_path / "run-2026"
    report = run_dir / "report" / "report.json"
    report.parent.mkdir(parents=True)
    report.write_text('{"metrics": {"mrr@20": 0.25}}')

    tracker = CometTracker(api_key=None)
    assert not tracker.online
    tracker.start(run_dir, "run-2026")
    tracker.log_params(params_with_secret())
    tracker.log_metrics({"mrr@20": 0.25, "hr@20": 0.5, "model": "gru", "baseline_pop": {"hr@20": 0.1}})
    tracker.log_artifact(report)
    tracker.close()

    archive = tracker.archive()
    assert archive is not None and archive.parent == run_dir / "comet"
    experiment, messages, assets = read_offline_archive(archive)
    assert "run-2026" in experiment["tags"]
    params = {m["payload"]["param"]["paramName"]: m["payload"]["param"]["paramValue"]
              for m in messages if m["type"] == "parameter_msg"}  # fmt: skip
    metrics = {m["payload"]["metric"]["metricName"]: m["payload"]["metric"]["metricValue"]
               for m in messages if m["type"] == "metric_msg"}  # fmt: skip
    assert params["model.hidden_size"] == 64 and params["datasource.password"] == "***"
    assert metrics["mrr@20"] == 0.25 and metrics["hr@20"] == 0.5
    assert json.loads(assets["report.json"]) == {"metrics": {"mrr@20": 0.25}}  # the report travels as an asset
    assert_no_canary(run_dir)


@pytest.mark.slow  # imports Lightning (10-20 s on a busy 2-core machine)
def test_lightning_trains_into_the_same_comet_experiment(tmp_path, secret_env):
    """CometLogger bound to the run's experiment: training curves land in the same offline archive."""
    from recframe.tracker.comet import CometTracker

    tracker = CometTracker()
    tracker.start(tmp_path, "run-lightning")
    logger = tracker.lightning_logger()
    assert logger is not None and logger.experiment is tracker.experiment  # one run, one experiment
    logger.log_metrics({"train_loss": 1.5}, step=3)
    logger.finalize("success")
    tracker.log_metrics({"mrr@20": 0.2})
    tracker.close()
    _, messages, _ = read_offline_archive(tracker.archive())
    names = {m["payload"]["metric"]["metricName"] for m in messages if m["type"] == "metric_msg"}
    assert {"train_loss", "mrr@20"} <= names
    assert len(list((tmp_path / "comet").glob("*.zip"))) == 1  # not a second experiment
    assert_no_canary(tmp_path)


def test_comet_is_chosen_by_config_and_stays_offline_without_a_key(tmp_path, secret_env, compose_config):
    from recframe.app import instantiate_group

    tracker = instantiate_group("tracker", compose_config("tracker=comet").tracker)
    assert type(tracker).__name__ == "CometTracker" and not tracker.online
    assert "offline" in repr(tracker)


def test_comet_refuses_an_offline_dir_outside_the_run(tmp_path):
    from recframe.interfaces import ConfigError
    from recframe.tracker.comet import CometTracker

    with pytest.raises(ConfigError, match="tracker.offline_subdir"):
        CometTracker(offline_subdir="../elsewhere")


def test_mlflow_writes_a_run_with_params_metrics_and_the_report(tmp_path, secret_env):
    from mlflow.tracking import MlflowClient

    from recframe.tracker.mlflow import MLflowTracker

    store = tmp_path / "home" / "mlruns"
    run_dir = tmp_path / "run-7"
    (run_dir / "report").mkdir(parents=True)
    (run_dir / "report" / "index.html").write_text("<html>report</html>")

    tracker = MLflowTracker(tracking_uri=f"file:{store}", experiment_name="recframe-test")
    tracker.start(run_dir, "run-7")
    tracker.log_params(params_with_secret())
    tracker.log_metrics({"mrr@20": 0.3, "hr@20": 0.6, "model": "pop"})
    tracker.log_artifact(run_dir / "report" / "index.html")
    run_id = tracker.run_id
    tracker.close()

    run = MlflowClient(tracking_uri=tracker.tracking_uri).get_run(run_id)
    assert run.data.tags["recframe.run_id"] == "run-7" and run.info.status == "FINISHED"
    assert run.data.params["model.hidden_size"] == "64" and run.data.params["datasource.password"] == "***"
    assert run.data.metrics == {"mrr_at_20": 0.3, "hr_at_20": 0.6}
    artifacts = [a.path for a in MlflowClient(tracking_uri=tracker.tracking_uri).list_artifacts(run_id, "report")]
    assert artifacts == ["report/index.html"]
    assert_no_canary(store)


@pytest.mark.slow  # imports Lightning
def test_lightning_trains_into_the_same_mlflow_run(tmp_path, secret_env):
    from mlflow.tracking import MlflowClient

    from recframe.tracker.mlflow import MLflowTracker

    tracker = MLflowTracker(tracking_uri=f"file:{tmp_path / 'mlruns'}")
    tracker.start(tmp_path / "run", "run-l")
    tracker.lightning_logger().log_metrics({"train_loss": 0.7}, step=1)
    tracker.log_metrics({"mrr@20": 0.3})
    run_id = tracker.run_id
    tracker.close()
    run = MlflowClient(tracking_uri=tracker.tracking_uri).get_run(run_id)
    assert run.data.metrics == {"mrr_at_20": 0.3, "train_loss": 0.7}
    assert len(MlflowClient(tracking_uri=tracker.tracking_uri).search_runs([run.info.experiment_id])) == 1


def test_csv_tracker_output_holds_no_secret(tmp_path, secret_env):
    from recframe.tracker.csv import CSVTracker

    tracker = CSVTracker()
    tracker.start(tmp_path, "r")
    tracker.log_params(params_with_secret(in_value=False))
    tracker.log_metrics({"mrr@20": 0.1})
    tracker.close()
    assert json.loads((tmp_path / "tracking" / "params.json").read_text())["datasource.password"] == "***"
    assert_no_canary(tmp_path)


def test_a_pipeline_run_reaches_the_comet_archive(tmp_path, secret_env):
    """The pipeline's own calls (params at start, test metrics, report assets) land in the archive."""
    from recframe.model.pop import PopModel
    from recframe.tracker.comet import CometTracker

    tracker = CometTracker()
    Pipeline(datasource=ToySource(n_sessions=60), model=PopModel(), tester=ToyTester(), deployer=RecordingDeployer(),
             run_dir=tmp_path / "run", tracker=tracker, params=params_with_secret()).run()  # fmt: skip
    _, messages, assets = read_offline_archive(next((tmp_path / "run" / "comet").glob("*.zip")))
    metric_names = {m["payload"]["metric"]["metricName"] for m in messages if m["type"] == "metric_msg"}
    assert "hr@5" in metric_names
    assert "metrics.json" in assets
    assert_no_canary(tmp_path)


def test_comet_goes_online_only_with_a_key_and_never_shows_it():
    """The mode decision alone (starting an online experiment would reach comet.com: never in tests)."""
    from recframe.tracker.comet import CometTracker

    assert CometTracker(api_key="k" * 20).online
    assert not CometTracker(api_key="k" * 20, online=False).online
    assert not CometTracker(api_key=None, online=True).online  # no key: offline, with a warning
    assert "k" * 20 not in repr(CometTracker(api_key="k" * 20))


@pytest.mark.slow  # MLflow creates its SQLite schema with Alembic migrations (~10 s)
def test_mlflow_sqlite_store_keeps_artifacts_next_to_the_database(tmp_path, secret_env):
    pytest.importorskip("sqlalchemy")
    pytest.importorskip("alembic")
    from mlflow.tracking import MlflowClient

    from recframe.tracker.mlflow import MLflowTracker

    db = tmp_path / "home" / "mlflow.db"
    (tmp_path / "run" / "report").mkdir(parents=True)
    (tmp_path / "run" / "report" / "report.json").write_text("{}")
    tracker = MLflowTracker(tracking_uri=f"sqlite:///{db}")
    tracker.start(tmp_path / "run", "run-sql")
    tracker.log_params(params_with_secret())
    tracker.log_metrics({"mrr@20": 0.4})
    tracker.log_artifact(tmp_path / "run" / "report" / "report.json")
    run_id = tracker.run_id
    tracker.close()
    run = MlflowClient(tracking_uri=f"sqlite:///{db}").get_run(run_id)
    assert run.data.metrics == {"mrr_at_20": 0.4} and run.data.params["datasource.password"] == "***"
    assert (tmp_path / "home" / "mlartifacts").is_dir()  # not ./mlruns in the working directory
    assert_no_canary(tmp_path / "home")
