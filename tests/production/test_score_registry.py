"""Batch scoring into a real DuckDB warehouse, the model registry (promote, rollback) and reproduce.

One small pipeline run (pop, metrics tester without gates, no deployer, the score step) is shared by
the module; the other runs resume from it, so the whole file takes well under a minute.
"""

from __future__ import annotations

import getpass
import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pytest
import yaml

from recframe.app import run
from recframe.cli import main
from recframe.interfaces import RecframeError
from recframe.report.run_report import fmt
from recframe.run_context import open_run
from recframe.score import ScoreSettings, latest_per_user, score_run
from recframe.warehouse_writer import DuckDBWriter

SMALL = [
    "datasource.synthetic.n_sessions=500",
    "datasource.synthetic.n_items=60",
    "datasource.synthetic.n_days=10",
    "datasource.split.test_days=2",
    "datasource.split.valid_days=1",
]


def _rows(wh: Path, sql: str, params=()) -> list[tuple]:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """A finished pop run with the score step; its gates pass (metrics tester, no gates)."""
    root = tmp_path_factory.mktemp("prod")
    wh = root / "wh.duckdb"
    overrides = [
        "model=pop", "tester=metrics", "deployer=none", f"datasource.warehouse={wh}", *SMALL,
        "steps=[data,train,test,score]", "score.k=5",
    ]  # fmt: skip
    run(overrides, run_dir=root / "pop")
    return root, wh, root / "pop"


def test_score_step_writes_the_table_and_the_run_registers(first):
    root, wh, run_dir = first
    summary = json.loads((run_dir / "score.json").read_text())
    types = dict(_rows(wh, "select column_name, data_type from information_schema.columns "
                           "where table_schema = 'main' and table_name = 'recommendations'"))  # fmt: skip
    assert types == {
        "tenant": "VARCHAR", "session_key": "VARCHAR", "user_key": "VARCHAR", "rank": "INTEGER", "sku": "VARCHAR",
        "score": "DOUBLE", "model_version": "VARCHAR", "run_id": "VARCHAR", "scored_at": "TIMESTAMP",
    }  # fmt: skip
    n, sessions, max_rank, versions = _rows(
        wh, "select count(*), count(distinct session_key), max(rank), count(distinct model_version) "
        "from recommendations where run_id = ?", [run_dir.name]
    )[0]  # fmt: skip
    assert summary["rows"] == n and summary["sessions"] == sessions > 0 and max_rank == 5 and versions == 1
    # the synthetic source has no users: every session of the mart is scored, each with its own ranking
    assert summary["sessions_from"] == "mart"
    assert sessions == _rows(wh, "select count(*) from session_sequences where tenant = 'default'")[0][0]
    # ranks are 1..k with scores not increasing, and no item of the session is recommended (exclude_seen)
    ranked = _rows(wh, "select session_key, list(score order by rank) from recommendations group by 1")
    assert all(s == sorted(s, reverse=True) for _, s in ranked)
    clash = _rows(wh, "select count(*) from recommendations r join session_sequences s "
                      "on s.session_id = r.session_key where list_contains(s.items, r.sku)")  # fmt: skip
    assert clash == [(0,)]
    # gates passed: registered, and as the tenant's first version it is the champion
    reg = json.loads((run_dir / "registry.json").read_text())
    assert reg["champion"] and reg["new"] and reg["model_version"] == summary["model_version"]
    row = _rows(wh, "select run_id, model, config_hash, data_fingerprint, packages, artifact_sha256, is_champion "
                    "from model_registry where model_version = ?", [reg["model_version"]])  # fmt: skip
    run_id, model, chash, dfp, packages, sums, champ = row[0]
    info = json.loads((run_dir / "runinfo.json").read_text())
    assert (run_id, model, champ) == (run_dir.name, "pop", True)
    assert chash == info["config_hash"] and dfp == info["data_fingerprint"] and dfp.startswith("sha256:")
    assert "torch" in json.loads(packages) and set(json.loads(sums)) == {"model.json", "vocab.json", "weights.pt"}
    assert _rows(wh, "select count(*) from latest_recommendations")[0][0] == n


def test_run_directory_records_resolved_config_and_seeds(first):
    _, wh, run_dir = first
    text = (run_dir / "config.resolved.yaml").read_text()
    cfg = yaml.safe_load(text)
    assert "${" not in text and "hydra" not in cfg
    assert cfg["datasource"]["warehouse"] == str(wh) and cfg["paths"]["output_dir"] == str(run_dir.resolve())
    info = json.loads((run_dir / "runinfo.json").read_text())
    assert info["seeds"]["seed"] == 42 and info["seeds"]["datasource.synthetic.seed"] == 42
    assert info["packages"]["duckdb"] == duckdb.__version__


def test_secrets_are_masked_in_the_resolved_config(tmp_path, monkeypatch):
    from omegaconf import OmegaConf

    from recframe.runinfo import resolved_config

    monkeypatch.setenv("MY_DB_PASSWORD", "s3cr3t-value")
    cfg = OmegaConf.create({"datasource": {"password": "hunter22", "dsn": "x://u:${oc.env:MY_DB_PASSWORD}@h"}})
    out = resolved_config(cfg, tmp_path)
    assert out["datasource"]["password"] == "***" and "s3cr3t-value" not in out["datasource"]["dsn"]


def test_rescoring_replaces_the_runs_rows_and_a_failure_keeps_them(first):
    _, wh, run_dir = first
    ctx = open_run(run_dir)
    con = duckdb.connect(str(wh))
    con.execute("insert into recommendations values ('default', 's', null, 1, 'x', 1.0, 'v', 'other-run', now())")
    con.close()
    before = _rows(wh, "select * from recommendations where run_id = ? order by session_key, rank", [run_dir.name])

    def boom() -> None:
        raise RuntimeError("injected between the staging load and the swap")

    with DuckDBWriter(wh) as writer, pytest.raises(RecframeError, match="previous rows kept: injected"):
        score_run(ctx, ScoreSettings(k=3), writer=writer, before_swap=boom)
    assert _rows(wh, "select * from recommendations where run_id = ? order by session_key, rank",
                 [run_dir.name]) == before  # fmt: skip
    assert _rows(wh, "select count(*) from duckdb_tables() where table_name like '%staging%'") == [(0,)]

    assert main(["score", str(run_dir), "score.k=3"]) == 0
    after = _rows(wh, "select max(rank), count(distinct session_key) from recommendations where run_id = ?",
                  [run_dir.name])  # fmt: skip
    assert after == [(3, len({r[1] for r in before}))]
    assert _rows(wh, "select count(*) from recommendations where run_id = 'other-run'") == [(1,)]


def test_latest_session_per_user():
    import pandas as pd

    s = pd.DataFrame({"session_key": ["a", "b", "c", "d"], "user_key": ["u1", "u1", None, "u2"],
                      "end_ms": [5, 9, 1, 3], "items": [["1"]] * 4})  # fmt: skip
    assert sorted(latest_per_user(s)["session_key"]) == ["b", "c", "d"]


def test_promote_refused_then_accepted_then_rolled_back(first, capsys):
    root, wh, pop_dir = first
    pop_version = json.loads((pop_dir / "registry.json").read_text())["model_version"]
    # pop under the default tester's gate (hr@20 >= 1.2 x pop) fails: not registered, promotion refused
    failed = root / "pop-gated"
    run(["model=pop", "deployer=none", f"datasource.warehouse={wh}", *SMALL, "steps=[test]",
         f"run.resume_from={pop_dir}"], run_dir=failed)  # fmt: skip
    assert not (failed / "registry.json").exists()
    assert main(["promote", str(failed)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not promoting" in err and "hr@20" in err and "Traceback" not in err

    knn = root / "vsknn"
    run(["model=vsknn", "tester=metrics", "deployer=none", "registry.promote=never", f"datasource.warehouse={wh}",
         *SMALL, "steps=[train,test]", f"run.resume_from={pop_dir}"], run_dir=knn)  # fmt: skip
    knn_version = json.loads((knn / "registry.json").read_text())["model_version"]
    assert knn_version.startswith("vsknn-") and not json.loads((knn / "registry.json").read_text())["champion"]
    assert main(["promote", str(knn)]) == 0
    champions = _rows(wh, "select model_version, promoted_by from model_registry where is_champion")
    assert champions == [(knn_version, getpass.getuser())]
    log = _rows(wh, "select action, from_version, to_version, os_user from model_registry_log order by moved_at")
    assert log[-1] == ("promote", pop_version, knn_version, getpass.getuser())
    # the view follows the champion: vsknn has not been scored yet, so it is empty until it is
    assert _rows(wh, "select count(*) from latest_recommendations") == [(0,)]
    assert main(["score", str(knn)]) == 0
    assert _rows(wh, "select distinct model_version from latest_recommendations") == [(knn_version,)]
    capsys.readouterr()

    assert main(["rollback", "--warehouse", str(wh)]) == 0
    assert json.loads(capsys.readouterr().out)["champion"] == pop_version
    assert _rows(wh, "select model_version from model_registry where is_champion") == [(pop_version,)]
    assert main(["rollback", str(pop_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert "nothing to roll back to" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["score", "/nonexistent/run"], "must be an existing run directory"),
        (["score", "{run}", "score.k=0"], "score.k"),
        (["score", "{run}", "score.nope=1"], "score.nope"),
        (["score", "{run}", "model=gru"], "accepts only score."),
        (["score", "{run}", "score.start_date=yesterday"], "score.start_date"),
        (["promote"], "run_dir"),
        (["rollback"], "RUN_DIR"),
    ],
)
def test_command_errors_are_one_line_exit_2(first, capsys, argv, needle):
    _, _, run_dir = first
    code = main([a.replace("{run}", str(run_dir)) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_files_source_needs_score_warehouse(first, tmp_path, capsys):
    _, _, run_dir = first
    copy = tmp_path / "files-run"
    shutil.copytree(run_dir, copy)
    cfg_path = copy / ".hydra" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    data = copy / "data"
    cfg["datasource"] = {"_target_": "recframe.datasource.files.FilesSource",
                         "train": str(data / "train.parquet"), "test": str(data / "test.parquet")}  # fmt: skip
    cfg_path.write_text(yaml.safe_dump(cfg))
    assert main(["score", str(copy)]) == 2
    assert "score.warehouse" in capsys.readouterr().err
    out = tmp_path / "out.duckdb"
    assert main(["score", str(copy), f"score.warehouse={out}", "score.sessions=window"]) == 0
    assert json.loads(capsys.readouterr().out)["sessions_from"] == "splits"
    assert _rows(out, "select count(distinct session_key) > 0 from recommendations") == [(True,)]


def test_reproduce_gives_the_same_metrics(first, tmp_path, capsys):
    _, _, run_dir = first
    assert main(["reproduce", str(run_dir), "--out", str(tmp_path / "again")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["reproduced"] and out["mismatches"] == []
    assert out["metrics"]["mrr@20"][0] == out["metrics"]["mrr@20"][1] > 0
    a = json.loads((run_dir / "runinfo.json").read_text())
    b = json.loads((tmp_path / "again" / "runinfo.json").read_text())
    assert a["data_fingerprint"] == b["data_fingerprint"] and a["config_hash"] == b["config_hash"]
    # a changed metric is reported, not hidden
    from recframe.reproduce import compare

    m = json.loads((tmp_path / "again" / "metrics.json").read_text())
    m["mrr@20"] += 0.01
    (tmp_path / "again" / "metrics.json").write_text(json.dumps(m))
    assert any(x.startswith("mrr@20") for x in compare(run_dir, tmp_path / "again")["mismatches"])


def test_mlflow_model_registry_follows_the_champion(first, tmp_path, capsys, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # MLflow may leave a default store in the working directory under pytest

    _, _, pop_dir = first
    wh, uri = tmp_path / "ml.duckdb", f"file:{tmp_path / 'mlruns'}"
    common = ["tester=metrics", "deployer=none", "tracker=mlflow", f"tracker.tracking_uri={uri}",
              f"datasource.warehouse={wh}", *SMALL, "steps=[train,test]", f"run.resume_from={pop_dir}"]  # fmt: skip
    run(["model=pop", *common], run_dir=tmp_path / "a")
    run(["model=vsknn", "registry.promote=never", *common], run_dir=tmp_path / "b")
    a, b = (json.loads((tmp_path / r / "registry.json").read_text()) for r in ("a", "b"))
    assert (a["mlflow_model"], a["mlflow_version"], b["mlflow_version"]) == ("recframe-default", "1", "2")
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri(), registry_uri=(tmp_path / "mlruns").as_uri())
    assert str(client.get_model_version_by_alias("recframe-default", "champion").version) == "1"
    mv = client.get_model_version("recframe-default", "2")
    assert mv.tags["recframe.model_version"] == b["model_version"] and mv.run_id
    assert main(["promote", str(tmp_path / "b")]) == 0
    assert str(client.get_model_version_by_alias("recframe-default", "champion").version) == "2"
    assert main(["rollback", str(tmp_path / "b")]) == 0
    assert str(client.get_model_version_by_alias("recframe-default", "champion").version) == "1"
    capsys.readouterr()


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("score.k=0", "score.k"),
        ("registry.promote=sometimes", "registry.promote"),
        ("score.sessions=all", "score.sessions"),
    ],
)
def test_bad_score_and_registry_settings_fail_before_the_run(tmp_path, capsys, override, needle):
    code = main(["model=pop", "deployer=none", override, f"hydra.run.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_length_batches_cover_every_session_once_and_bound_padding():
    from recframe.score import length_batches

    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 300, 5000).tolist()
    batches = length_batches(lengths, 256, steps_per_session=16)
    assert sorted(np.concatenate(batches).tolist()) == list(range(5000))
    for b in batches:
        longest = max(lengths[i] for i in b)
        assert len(b) <= 256 and (len(b) == 1 or len(b) * longest <= 256 * 16)


def test_champion_gate_promotes_only_a_better_challenger(first, tmp_path):
    _, _, pop_dir = first
    wh = tmp_path / "gate.duckdb"
    common = ["tester=metrics", "deployer=none", "registry.promote=if_better", "registry.metric=mrr@20",
              f"datasource.warehouse={wh}", *SMALL, "steps=[train,test]", f"run.resume_from={pop_dir}"]  # fmt: skip
    run(["model=pop", *common], run_dir=tmp_path / "pop")
    assert json.loads((tmp_path / "pop" / "registry.json").read_text())["champion"]  # no champion yet
    run(["model=vsknn", *common], run_dir=tmp_path / "knn")
    won = json.loads((tmp_path / "knn" / "registry.json").read_text())
    gate = won["champion_gate"]
    assert won["champion"] and gate["wins"] and gate["challenger"]["mrr@20"] > gate["champion"]["mrr@20"] > 0
    assert gate["champion"]["targets"] == gate["challenger"]["targets"] > 0  # same test split for both
    assert gate["served"] == {"exclude_seen": True}  # deployer=none: ranked as the local endpoint serves
    served = json.loads((tmp_path / "knn" / "metrics.json").read_text())["served"]
    assert served["settings"] == {"exclude_seen": True} and served["targets"] > 0
    # pop against the vsknn champion: scored side by side, refused, champion unchanged
    run(["model=pop", *common], run_dir=tmp_path / "pop-again")
    lost = json.loads((tmp_path / "pop-again" / "registry.json").read_text())
    assert not lost["champion"] and not lost["champion_gate"]["wins"]
    assert lost["champion_gate"]["champion_version"] == won["model_version"]
    assert _rows(wh, "select model_version from model_registry where is_champion") == [(won["model_version"],)]
    assert _rows(wh, "select action from model_registry_log order by moved_at") == [("register",), ("gate",)]
    # the run report shows both sides with the gate's own numbers, and its decision
    for run_name, record, decision in (("knn", won, "promoted"), ("pop-again", lost, "kept the champion")):
        cells = _champion_cells(tmp_path / run_name / "report" / "index.html")
        g = record["champion_gate"]
        a, b, margin = g["champion"]["mrr@20"], g["challenger"]["mrr@20"], g["margin"]
        targets = [fmt(g["champion"]["targets"]), fmt(g["challenger"]["targets"])]
        assert cells[:3] == [["model version", g["champion_version"], record["model_version"]],
                             ["mrr@20", fmt(a), fmt(b)], ["test targets", *targets]]  # fmt: skip
        assert cells[3] == ["mrr@20", fmt(margin), fmt(a * (1 + margin)), fmt(b - a), decision]
    assert fmt(won["champion_gate"]["challenger"]["mrr@20"]) != fmt(won["champion_gate"]["champion"]["mrr@20"])


def _champion_cells(page: Path) -> list[list[str]]:
    """The body cells of the report's champion section, table rows in order, badges as their text."""
    import html
    import re

    text = page.read_text()
    section = re.search(r"<section id='champion'>(.*?)</section>", text, re.S)
    assert section, "the report has no champion section"
    rows = re.findall(r"<tr>(.*?)</tr>", section.group(1), re.S)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", r, re.S) for r in rows]
    return [[html.unescape(re.sub(r"<[^>]+>", "", c)) for c in row] for row in cells if row]


def test_summary_says_the_deploy_was_skipped_with_deployer_none(tmp_path):
    from rich.console import Console

    from recframe.console import print_summary
    from recframe.pipeline import RunResult

    console = Console(record=True, width=120)
    skipped = {"url": "", "smoke": {"passed": True, "skipped": True}, "deployer": "none"}
    print_summary(console, RunResult(run_dir=tmp_path, steps=["deploy"], deployment=skipped))
    text = console.export_text()
    assert "deploy skipped (deployer=none)" in text and "smoke test passed" not in text
