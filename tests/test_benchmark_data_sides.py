"""The data benchmark (``benchmarks/data_scale.py``): its sides produce the same sessions, every rule
of the data step shows in the output, and a difference between sides fails the run."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # data_scale imports data_sides by this name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _load("data_scale")


@pytest.fixture(scope="module")
def sides(bench):
    return sys.modules["data_sides"]


def digest_of(splits):
    return sys.modules["data_digest"].session_digest(splits)


@pytest.fixture(scope="module")
def raw_csv(tmp_path_factory) -> Path:
    data_input = _load("data_input")
    path = tmp_path_factory.mktemp("raw") / "browsing_train.csv"
    data_input.make("csv", path, 20_000, 2_000, 30, 3, 0.02)
    return path


def _run(bench, capsys, argv: list[str]) -> tuple[int, dict, str]:
    code = bench.main(argv)
    captured = capsys.readouterr()
    return code, json.loads(captured.out.strip().splitlines()[-1]), captured.err


def _check_agreement(result: dict, err: str) -> None:
    hashes = {name: s["output_hash"] for name, s in result["sides"].items()}
    assert result["match"] is True and len(set(hashes.values())) == 1, hashes
    assert {"duckdb_sql", "pandas"} <= set(hashes)
    if importlib.util.find_spec("polars") is None:
        assert "polars is not installed" in result["skipped"]["polars"]
    else:
        assert "polars" in hashes
    for name, s in result["sides"].items():
        assert s["wall_s"] > 0 and s["cpu_s"] > 0 and s["peak_rss_mb"] > 50, name
        assert s["process_peak_rss_mb"] >= s["peak_rss_mb"] - 1, name
    splits = result["splits"]
    assert all(splits[k]["sessions"] > 50 for k in ("train", "valid", "test")), splits
    assert f"all {len(hashes)} sides produced the same sessions" in err


@pytest.mark.timeout(300)
def test_ingest_sides_agree_on_every_session(bench, capsys, tmp_path) -> None:
    argv = ["--events", "20000", "--items", "2000", "--days", "30", "--cache-dir", str(tmp_path / "cache")]
    code, result, err = _run(bench, capsys, argv)
    assert code == 0, err
    assert result["mode"] == "ingest" and "recframe" in result["sides"], err
    assert result["sides"]["recframe"]["rows_accounted"] is True
    _check_agreement(result, err)


@pytest.mark.timeout(300)
def test_in_place_sides_agree_on_a_parquet_lake(bench, capsys, tmp_path) -> None:
    argv = ["--events", "20000", "--items", "2000", "--days", "30", "--in-place", "--workdir", str(tmp_path)]
    code, result, err = _run(bench, capsys, argv)
    assert code == 0, err
    assert result["mode"] == "in_place"
    assert sorted((tmp_path / "input").glob("*/lake/dt=*/*.parquet")), "no hive-partitioned lake written"
    # recframe reads the lake in place where its checkout has datasource.raw.mode, and says so where not
    assert "recframe" in result["sides"] or "datasource.raw.mode" in result["skipped"]["recframe"]
    # the incremental side: the lake less its last day, then the day appended and built again on the
    # same warehouse; its splits are among those _check_agreement finds equal to every other side's
    inc = result["sides"]["recframe_incremental"]
    assert inc["first_output_hash"] != inc["output_hash"], "the first build saw the last day"
    assert inc["build_s"] > 0 and inc["first_build_s"] > 0 and inc["ratio"] == result["incremental"]["ratio"]
    days = sorted(p.name for p in (tmp_path / "input").glob("*/lake/dt=*"))
    today = time.strftime("dt=%Y-%m-%d", time.gmtime())
    dated = [d for d in days if d != "dt=unknown" and d <= today]
    assert inc["appended_partitions"] == dated[-len(inc["appended_partitions"]) :]
    assert 1 <= len(inc["appended_partitions"]) <= 2, inc["appended_partitions"]
    _check_agreement(result, err)


def test_the_held_back_day_is_the_last_full_one_not_in_the_future(tmp_path) -> None:
    inc = _load("data_incremental")
    lake = tmp_path / "lake"
    sizes = {"dt=2026-01-29": 100, "dt=2026-01-30": 90, "dt=2026-01-31": 100, "dt=2026-02-01": 3, "dt=2099-12-31": 5}
    for name, size in sizes.items():
        (lake / name).mkdir(parents=True)
        (lake / name / "part-0.parquet").write_bytes(b"x" * size)
    (lake / "dt=unknown").mkdir()
    (lake / "notes").mkdir()
    # the last full day and the remainder after it; the future partition is not a day to append
    assert [p.name for p in inc.appended_partitions(lake, "2026-12-05")] == ["dt=2026-01-31", "dt=2026-02-01"]
    (lake / "dt=2026-02-01" / "part-1.parquet").write_bytes(b"x" * 60)
    assert [p.name for p in inc.appended_partitions(lake, "2026-12-05")] == ["dt=2026-02-01"]
    inc.linked_copy(lake, tmp_path / "copy")
    copied = tmp_path / "copy" / "dt=2026-01-31" / "part-0.parquet"
    assert copied.read_bytes() == b"x" * 100
    assert copied.stat().st_ino == (lake / "dt=2026-01-31" / "part-0.parquet").stat().st_ino
    with pytest.raises(SystemExit, match="no dated partition"):
        inc.appended_partitions(lake, "2000-01-01")


# ------------------------------------------------------------------------------------------ the rules


def _sql_digest(sides, raw_csv: Path, sql: str) -> str:
    import duckdb

    table = duckdb.sql(sql.replace("{relation}", sides.source_relation(sides.Input("csv", raw_csv)))).to_arrow_table()
    return digest_of(sides.split_ordered(table))[0]


RULES = {  # rule: what a side that skips it would write instead (old -> new, in the query)
    "exact duplicates count once": lambda s: ("select distinct session_id", "select session_id"),
    "SKUs are lower-cased": lambda s: ("lower(product_sku_hash)", "product_sku_hash"),
    "SKUs are trimmed": lambda s: (s.trimmed("lower(product_sku_hash)"), "lower(product_sku_hash)"),
    "session ids are trimmed": lambda s: (s.trimmed("session_id_hash"), "session_id_hash"),
    "future timestamps are rejected": lambda s: ("and ts <= {limit}", "and ts is not null"),
    "badly decoded SKUs are rejected": lambda s: ("and not contains(item_id, '\ufffd')", ""),
    "action aliases are kept": lambda s: ("when 'view' then 1", "when 'view' then 0"),
    "product actions are lower-cased": lambda s: ("trim(lower(product_action))", "trim(product_action)"),
    "the action falls back on the event type": lambda s: (
        "coalesce(nullif(trim(lower(product_action)), ''), trim(lower(event_type)))",
        "nullif(trim(lower(product_action)), '')",
    ),
    "bots are dropped": lambda s: (f"between {s.MIN_LENGTH} and {s.MAX_LENGTH}", f"between {s.MIN_LENGTH} and 100000"),
    "pageviews are not kept": lambda s: ("= 'pageview' then 0", "= 'pageview' then 1"),
    "unseen items leave valid and test": lambda s: ("and item_id in (select item_id from known)", ""),
    "short sessions go after the unseen items": lambda s: (
        "from later where session_id in (select session_id from long_enough)",
        "from later",
    ),
}


@pytest.mark.parametrize("rule", RULES)
def test_every_rule_shows_in_the_output(sides, raw_csv, rule) -> None:
    """The generated dirt exercises each rule: a side that skips one gets another hash."""
    limit = sides.future_limit_ms()
    sql = sides.sessions_sql("{relation}", limit)
    old, new = RULES[rule](sides)
    old = old.replace("{limit}", str(limit))
    assert old in sql, f"the query no longer has {old!r}"
    assert _sql_digest(sides, raw_csv, sql.replace(old, new)) != _sql_digest(sides, raw_csv, sql), rule


# ------------------------------------------------------------------------------------------ the digest


def _splits(train: list[tuple[str, str, int]]) -> dict[str, pa.Table]:
    empty = pa.table({"session_id": pa.array([], pa.string()), "item_id": pa.array([], pa.string()), "ts": []})
    rows = list(zip(*train, strict=True))
    table = pa.table({"session_id": rows[0], "item_id": rows[1], "ts": pa.array(rows[2], pa.int64())})
    return {"train": table, "valid": empty, "test": empty}


def test_digest_sees_order_membership_and_boundaries(sides) -> None:
    base = [("a", "x", 1), ("a", "y", 2), ("b", "z", 3)]
    digest, counts = digest_of(_splits(base))
    assert counts["train"] == {"sessions": 2, "events": 3}
    assert digest == digest_of(_splits(list(base)))[0]
    swapped = [("a", "y", 1), ("a", "x", 2), ("b", "z", 3)]
    regrouped = [("a", "x", 1), ("b", "y", 2), ("b", "z", 3)]
    retimed = [("a", "x", 1), ("a", "y", 5), ("b", "z", 3)]
    renamed = [("a", "x", 1), ("a", "y", 2), ("c", "z", 3)]
    others = {digest_of(_splits(rows))[0] for rows in (swapped, regrouped, retimed, renamed)}
    assert len(others) == 4 and digest not in others
    # pandas categoricals and Polars frames hash like Arrow
    frame = _splits(base)["train"].to_pandas()
    frame["session_id"] = frame["session_id"].astype("category")
    assert digest_of({**_splits(base), "train": frame})[0] == digest
    with pytest.raises(ValueError, match="not sorted by session id"):
        digest_of(_splits([("b", "z", 3), ("a", "x", 1), ("a", "y", 2)]))


def test_a_difference_between_sides_fails_the_run(bench, capsys) -> None:
    args = argparse.Namespace(memory_limit="2GB", repeat=2)
    inp = sys.modules["data_sides"].Input("csv", Path("raw.csv"))
    split = {"train": {"sessions": 1, "events": 2}}

    def run(h: str) -> dict:
        figures = {"wall_s": 1.0, "cpu_s": 1.0, "peak_rss_mb": 100.0, "output_hash": h}
        return figures | {"work_s": 0.9, "splits": split, "process_peak_rss_mb": 110.0}

    runs = {"recframe": [run("aa"), run("aa")], "polars": [run("aa"), run("aa")], "pandas": [run("bb"), run("bb")]}
    assert bench.report(args, {"rows": 10, "mb": 1.0}, inp, runs, {}) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1])["match"] is False
    assert "MISMATCH: sides differ: recframe, polars -> aa; pandas -> bb" in captured.err
    runs = {"recframe": [run("aa"), run("cc")], "polars": [run("aa"), run("aa")]}
    assert bench.report(args, {"rows": 10, "mb": 1.0}, inp, runs, {}) == 1
    assert "recframe gave different outputs in different rounds" in capsys.readouterr().err


def test_pandas_is_skipped_where_it_cannot_fit(bench) -> None:
    assert bench.pandas_fits(1_000) is None
    reason = bench.pandas_fits(10**12)
    assert reason is not None and "pandas would need about" in reason


@pytest.mark.timeout(60)
def test_a_side_past_the_memory_limit_is_stopped(bench) -> None:
    grow = "import time; b = bytearray(400 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(30)"
    code, _, over = bench.spawn([sys.executable, "-c", grow], rss_limit_mb=150)
    assert over is not None and over > 150 and code != 0
    code, _, over = bench.spawn([sys.executable, "-c", "pass"], rss_limit_mb=150)
    assert over is None and code == 0
