"""One secret rule, applied by every output: a credential in a config never reaches the run report,
the trackers, the comparison, the sweep leaderboard or best.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from recframe.app import redacted_params
from recframe.report.compare import compare_runs, write_comparison
from recframe.report.run_report import write_report
from recframe.secrets import REDACTED, is_secret_key, mask_override, mask_secrets, scrub_params
from recframe.sweep import summarize_sweep
from recframe.tracker.csv import CSVTracker

SECRET_KEYS = [
    "password",
    "passwd",
    "db_pass",
    "secret",
    "client_secret",
    "token",
    "api_key",
    "apiKey",
    "api-key",
    "private_key",
    "credentials",
    "access_key",
    "aws_access_key_id",
    "AWS_SECRET_ACCESS_KEY",
]
PLAIN_KEYS = ["model", "hidden", "lr", "dropout", "k", "user", "account", "endpoint_name", "region"]
CANARY = "canary-7f3a9e"


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_credential_keys_are_secret(key: str) -> None:
    assert is_secret_key(key) and is_secret_key(f"datasource.{key}")


@pytest.mark.parametrize("key", PLAIN_KEYS)
def test_ordinary_keys_are_not(key: str) -> None:
    assert not is_secret_key(key)


def test_mask_secrets_nested_unset_and_env_values() -> None:
    cfg = {
        "datasource": {"password": "hunter2", "user": "me", "dsn": f"duckdb://x?pw={CANARY}"},
        "deployer": {"access_key": "AKIA123", "creds": [{"token": "t0k"}]},
        "tracker": {"api_key": None, "token": ""},
    }
    out = mask_secrets(cfg, environ={"DB_PASSWORD": CANARY, "PATH": "/usr/bin"})
    assert out["datasource"] == {"password": REDACTED, "user": "me", "dsn": f"duckdb://x?pw={REDACTED}"}
    assert out["deployer"] == {"access_key": REDACTED, "creds": [{"token": REDACTED}]}
    assert out["tracker"] == {"api_key": None, "token": ""}  # unset stays visibly unset
    assert cfg["datasource"]["password"] == "hunter2"  # a copy: the input is untouched
    assert mask_override("deployer.access_key=AKIA123") == f"deployer.access_key={REDACTED}"
    assert mask_override("model.k=3") == "model.k=3"


def _config() -> dict:
    return {
        "model": {"_target_": "recframe.model.pop.PopModel", "k": 2},
        "datasource": {"password": f"pw-{CANARY}", "user": "me"},
        "deployer": {"access_key": f"ak-{CANARY}", "region": "eu-west-1"},
        "tracker": {"api_key": f"api-{CANARY}", "nested": {"token": f"tok-{CANARY}"}},
    }


def test_the_same_rule_in_every_masker(tmp_path: Path) -> None:
    """The tracker params of the pipeline (app.redacted_params then scrub_params) and the config
    trees of the reports mask exactly the same keys, access_key included."""
    flat = scrub_params(redacted_params(OmegaConf.create(_config())), environ={})
    masked = {k for k, v in flat.items() if v == REDACTED}
    tree = mask_secrets(_config(), environ={})
    in_tree = {
        f"{group}.{k}" if not isinstance(v, dict) else f"{group}.{k}.token"
        for group, node in tree.items()
        for k, v in node.items()
        if v == REDACTED or (isinstance(v, dict) and v.get("token") == REDACTED)
    }
    assert (
        masked
        == in_tree
        == {
            "datasource.password",
            "deployer.access_key",
            "tracker.api_key",
            "tracker.nested.token",
        }
    )


# A run's config as the CLI composes it, with a credential set in each place one can live.
SECRET_OVERRIDES = (
    "model=pop",
    "datasource=snowflake",
    f"datasource.password=pw-{CANARY}",
    "deployer=sagemaker",
    "deployer.region=eu-west-1",
    f"+deployer.access_key=ak-{CANARY}",
    "tracker=comet",
    f"tracker.api_key=api-{CANARY}",
    f"+tracker.nested.token=tok-{CANARY}",
)


def _run_dir(root: Path, name: str, mrr: float, config: DictConfig) -> Path:
    """A finished run's folder: its config saved as Hydra saves it (no hydra section), overrides, metrics."""
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    saved = OmegaConf.to_container(config, resolve=False)
    saved.pop("hydra", None)
    OmegaConf.save(OmegaConf.create(saved), run / ".hydra" / "config.yaml")
    overrides = [*SECRET_OVERRIDES, f"+model.k={name}"]
    OmegaConf.save(OmegaConf.create(overrides), run / ".hydra" / "overrides.yaml")
    (run / "metrics.json").write_text(json.dumps({"model": "pop", "mrr@20": mrr, "hr@20": 2 * mrr}))
    return run


def test_a_config_secret_reaches_no_report_tracker_or_dump(tmp_path: Path, compose_config) -> None:
    cfg = compose_config(*SECRET_OVERRIDES)
    sweep = tmp_path / "sweep"
    runs = [_run_dir(sweep, "0", 0.1, cfg), _run_dir(sweep, "1", 0.2, cfg)]
    written = [write_report(r) for r in runs]
    write_comparison(compare_runs(runs), tmp_path / "cmp")
    summarize_sweep(sweep)
    tracker = CSVTracker()
    tracker.start(tmp_path / "track", "run")
    tracker.log_params(redacted_params(cfg))
    outputs = [
        *written,
        tmp_path / "cmp" / "leaderboard.csv",
        tmp_path / "cmp" / "leaderboard.html",
        sweep / "leaderboard.csv",
        sweep / "leaderboard.html",
        sweep / "best.yaml",
        sweep / "compare" / "leaderboard.csv",
        tmp_path / "track" / "tracking" / "params.json",
    ]
    for path in outputs:
        text = path.read_text()
        assert CANARY not in text, path
    assert "access_key: &#39;***&#39;" in written[0].read_text()  # shown, masked, in the report
    best = OmegaConf.load(sweep / "best.yaml")
    assert best.config.deployer.access_key == REDACTED and best.config.deployer.region == "eu-west-1"
    assert f"datasource.password={REDACTED}" in best.overrides
