"""recframe compare: run discovery, the leaderboard frame, CSV + HTML, and the CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from recframe.interfaces import DataError
from recframe.report.compare import compare_runs, find_runs, main


def make_run(d: Path, model: str, hr: float, lr: float, passed: bool = True, report: bool = False) -> Path:
    (d / ".hydra").mkdir(parents=True)
    metrics = {
        "model": model,
        "hr@20": hr,
        "mrr@20": hr / 3,
        "ndcg@20": hr / 2,
        "targets": 100,
        "baseline_pop": {"hr@20": 0.1, "mrr@20": 0.03},
    }
    (d / "metrics.json").write_text(json.dumps(metrics))
    (d / "gates.json").write_text(json.dumps({"passed": passed, "failures": []}))
    (d / ".hydra" / "config.yaml").write_text(
        f"model:\n  _target_: x.{model}\n  lr: {lr}\n  layers: 1\npaths:\n  output_dir: {d}\n"
        "tracker:\n  api_key: sk-secret\n"
    )
    (d / ".hydra" / "overrides.yaml").write_text(f"- model={model}\n- model.lr={lr}\n")
    if report:
        (d / "report").mkdir()
        (d / "report" / "index.html").write_text("<html></html>")
    return d


@pytest.fixture()
def multirun(tmp_path: Path) -> Path:
    root = tmp_path / "multirun" / "2026-01-01_00-00-00"
    make_run(root / "0", "gru", 0.40, 0.001, report=True)
    make_run(root / "1", "gru", 0.45, 0.01)
    make_run(root / "2", "sknn", 0.30, 0.001, passed=False)
    (root / "2" / "report").mkdir()
    (root / "2" / "report" / "metrics.json").write_text("{}")  # inside a run: not another run
    return root


def test_find_runs_in_multirun(multirun: Path) -> None:
    assert [p.name for p in find_runs([multirun])] == ["0", "1", "2"]


def test_compare_runs_frame(multirun: Path) -> None:
    df = compare_runs([multirun])
    assert list(df["model"]) == ["gru", "gru", "sknn"]
    assert list(df["hr@20"]) == [0.45, 0.40, 0.30]
    assert list(df["rank"]) == [1, 2, 3]
    assert df.loc[0, "pop hr@20"] == 0.1 and df.loc[0, "hr@20 / pop"] == pytest.approx(4.5)
    assert list(df["gates"]) == ["passed", "passed", "FAILED"]
    # only differing config values, never paths or secrets
    assert "config.model.lr" in df.columns and "config.model._target_" in df.columns
    assert "config.model.layers" not in df.columns
    assert not any(c.startswith("config.paths") for c in df.columns)
    assert "sk-secret" not in df.to_csv()


def test_sort_by_other_metric_and_popbias_ascending(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", "a", 0.2, 0.1)
    b = make_run(tmp_path / "b", "b", 0.1, 0.1)
    for d, pb in ((a, 0.9), (b, 0.2)):
        m = json.loads((d / "metrics.json").read_text())
        m["popbias@20"] = pb
        (d / "metrics.json").write_text(json.dumps(m))
    assert list(compare_runs([a, b], sort_by="popbias@20")["model"]) == ["b", "a"]


def test_main_writes_csv_and_html(multirun: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(multirun)]) == 0
    csv = pd.read_csv(multirun / "leaderboard.csv")
    assert len(csv) == 3
    page = (multirun / "leaderboard.html").read_text()
    assert "<svg" in page and "default-src 'none'" in page and "<script" not in page
    assert "href='0/report/index.html'" in page  # relative link to the run's report
    assert "FAILED" in page
    out = capsys.readouterr().out
    assert "leaderboard.html" in out and "gru" in out


def test_main_several_run_dirs_and_out(tmp_path: Path) -> None:
    a = make_run(tmp_path / "runs" / "a", "gru", 0.4, 0.1)
    b = make_run(tmp_path / "runs" / "b", "pop", 0.1, 0.1)
    assert main([str(a), str(b), "--out", str(tmp_path / "lb")]) == 0
    assert (tmp_path / "lb" / "leaderboard.csv").exists()
    assert main([str(a), str(b)]) == 0
    assert (tmp_path / "runs" / "leaderboard.html").exists()


def test_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(DataError, match="no run found"):
        compare_runs([tmp_path])
    assert main([str(tmp_path / "missing")]) != 0
    assert "no such run directory" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.json").write_text("[1, 2]")
    assert main([str(bad)]) != 0
