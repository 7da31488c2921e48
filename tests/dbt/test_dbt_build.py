"""The packaged dbt project on a real DuckDB file, run in-process through DuckDBSource.load."""

from __future__ import annotations

import json
import shutil

import duckdb
import pytest

from recframe.datasource.duckdb import DuckDBSource
from recframe.datasource.transform import packaged_project_dir
from recframe.interfaces import ConfigError, DataError

SMALL = {"n_sessions": 1500, "n_items": 120, "n_days": 14, "seed": 5}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One real build: ingest + dbt build + query + split."""
    root = tmp_path_factory.mktemp("wh")
    src = DuckDBSource(warehouse=root / "wh.duckdb", synthetic=SMALL, split={"test_days": 3, "valid_days": 2})
    ds = src.load(root / "run1")
    return src, ds, root


def test_dataset_contract_and_row_accounting(built):
    src, ds, root = built
    for frame in (ds.train, ds.valid, ds.test):
        assert list(frame.columns[:3]) == ["session_id", "item_id", "ts"]
        assert frame["ts"].dtype == "int64" and frame["session_id"].map(type).eq(str).all()
        assert frame.groupby("session_id").size().min() >= 2
        assert frame.equals(frame.sort_values(["session_id", "ts"], kind="stable").reset_index(drop=True))
    s = ds.stats
    assert s["rows_accounted"] and s["raw_rows"] == s["accepted"] + s["quarantined"]
    assert s["quarantine_reasons"].get("single_event_session", 0) > 0
    assert set(ds.test["action"]) <= {"detail", "add", "purchase"}
    # next item at every position: every event but each session's first is a target
    assert ds.test["target"].sum() == len(ds.test) - ds.test["session_id"].nunique() == s["targets"]["test"]
    assert ds.items is not None and ds.items["category"].notna().all()
    lineage = json.loads((root / "run1" / "lineage.json").read_text())
    ids = {n["id"] for n in lineage["nodes"]}
    assert "model.recframe.session_sequences" in ids and "source.recframe.recframe_raw.events" in ids
    assert {"from": "model.recframe.int_sessions", "to": "model.recframe.session_sequences"} in lineage["edges"]
    # dbt's artifacts of the build, written by recframe while the warehouse closed: the compiled
    # manifest and every node's result
    target = root / "run1" / "target"
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["nodes"]["model.recframe.int_sessions"]["compiled_code"]
    results = json.loads((target / "run_results.json").read_text())["results"]
    assert {r["unique_id"] for r in results} >= {"model.recframe.int_sessions", "model.recframe.session_sequences"}
    assert all(r["status"] in ("success", "pass") for r in results)


def test_split_has_no_leakage(built):
    _, ds, _ = built
    test_start = ds.test.groupby("session_id")["ts"].min().min()
    assert ds.train["ts"].max() < test_start and ds.valid["ts"].max() < test_start
    assert ds.train["ts"].max() < ds.valid.groupby("session_id")["ts"].min().min()
    ids = [set(f["session_id"]) for f in (ds.train, ds.valid, ds.test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert len(ds.valid) and not ds.valid.equals(ds.test)
    assert set(ds.test["item_id"]) <= set(ds.train["item_id"])


def test_items_travel_as_keys_in_sku_order_and_map_back_to_the_skus(built):
    """DuckDB's roll-up stores integer item keys (int_item_keys); the view and the query name them."""
    _, ds, root = built
    con = duckdb.connect(str(root / "wh.duckdb"), read_only=True)
    try:
        keys = con.execute(
            "select distinct item_key, sku from int_item_keys where tenant = 'default' order by 1"
        ).fetchall()
        rows = con.execute("select session_id, items, item_keys from session_sequences").fetchall()
        mart = dict(con.execute("select item_key, sku from items where tenant = 'default'").fetchall())
    finally:
        con.close()
    assert [k for k, _ in keys] == list(range(1, len(keys) + 1))
    assert [sku for _, sku in keys] == sorted(sku for _, sku in keys)  # key order is SKU order
    lookup = dict(keys)
    assert rows and all(items == [lookup[k] for k in item_keys] for _, items, item_keys in rows)
    assert all(lookup[k] == sku for k, sku in mart.items())
    view = {sid: items for sid, items, _ in rows}
    for sid, group in ds.train.groupby("session_id", sort=False):
        assert group["item_id"].tolist() == view[sid]


def test_actions_travel_as_ranks_named_alike_by_the_view_and_the_query(built):
    """DuckDB's roll-up stores action ranks; session_sequences and recframe's query name them the same."""
    import re

    from recframe.datasource.session_query import ACTION_OF_RANK

    _, ds, root = built
    macros = (packaged_project_dir() / "macros" / "session_lists.sql").read_text()
    body = macros[macros.index("macro action_of_rank") :]
    body = body[: body.index("endmacro")]
    assert {int(r): a for r, a in re.findall(r"when (\d+) then '(\w+)'", body)} == dict(enumerate(ACTION_OF_RANK))
    con = duckdb.connect(str(root / "wh.duckdb"), read_only=True)
    try:
        rows = con.execute("select session_id, actions, action_ranks from session_sequences").fetchall()
    finally:
        con.close()
    assert rows and all(actions == [ACTION_OF_RANK[r] for r in ranks] for _, actions, ranks in rows)
    view = {sid: actions for sid, actions, _ in rows}
    assert {a for actions in view.values() for a in actions} == {"detail", "add", "purchase"}
    for sid, group in ds.train.groupby("session_id", sort=False):
        assert group["action"].tolist() == view[sid]


COVEO_HEADER = "session_id_hash,event_type,product_action,product_sku_hash,server_timestamp_epoch_ms,hashed_url\n"


def build_coveo_rows(tmp_path, rows: list[str], sql: str) -> list[tuple]:
    """Build the warehouse from Coveo CSV ``rows`` (header added) and return ``sql``'s rows."""
    path = tmp_path / "browsing_train.csv"
    path.write_text(COVEO_HEADER + "".join(rows))
    DuckDBSource(warehouse=tmp_path / "wh.duckdb", raw={"format": "coveo", "path": str(path)}).build(tmp_path / "run")
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_events_at_the_same_time_are_ordered_by_sku(tmp_path):
    """Ties on (time, action) sort by SKU, as the Snowflake roll-up's ORDER BY does: keys follow SKU order."""
    t0 = 1_550_000_000_000
    rows = [f"s1,event_product,detail,{sku},{t0},u\n" for sku in ("zz", "b", "ab", "B ")]
    rows += [f"s1,event_product,add,a,{t0},u\n", f"s1,event_product,detail,c,{t0 + 5},u\n"]
    rows += [f"s2,event_product,detail,c,{t0 + 10},u\n", f"s2,event_product,detail,a,{t0 + 10},u\n"]
    got = dict(build_coveo_rows(tmp_path, rows, "select session_id, {'i': items, 'a': actions} from session_sequences"))
    # "B " normalises to "b", an exact duplicate of the "b" view; detail (rank 1) before add (rank 2)
    assert got["s1"] == {"i": ["ab", "b", "zz", "a", "c"], "a": ["detail", "detail", "detail", "add", "detail"]}
    assert got["s2"] == {"i": ["a", "c"], "a": ["detail", "detail"]}


def test_timestamps_before_1970_keep_their_values_and_actions(tmp_path):
    """The DuckDB roll-up packs (time, action rank) into one integer; negative epochs decode exactly."""
    rows = ["s1,event_product,detail,a,-86400001,u\n", "s1,event_product,add,b,-86400001,u\n"]
    rows += ["s1,event_product,purchase,c,-1,u\n", "s1,event_product,detail,a,5,u\n"]
    got = build_coveo_rows(
        tmp_path, rows, "select items, actions, timestamps, session_start_ms, session_end_ms from session_sequences"
    )
    assert got == [
        (["a", "b", "c", "a"], ["detail", "add", "purchase", "detail"], [-86400001, -86400001, -1, 5], -86400001, 5)
    ]


def test_rerun_is_idempotent_and_packaged_project_untouched(built):
    src, ds, root = built
    before = sorted(p.name for p in packaged_project_dir().iterdir())
    again = src.load(root / "run2")
    assert again.stats["ingest_skipped"] and again.stats["etl_id"] == ds.stats["etl_id"]
    assert again.train.equals(ds.train) and again.test.equals(ds.test)
    con = duckdb.connect(str(root / "wh.duckdb"), read_only=True)
    assert con.execute("select count(*) from raw.loads").fetchall()[0][0] == 1
    con.close()
    after = sorted(p.name for p in packaged_project_dir().iterdir())
    assert before == after and "target" not in after and "logs" not in after


def test_failing_dbt_test_raises_data_error_naming_it(built, tmp_path):
    src, _, root = built
    project = tmp_path / "project"
    shutil.copytree(packaged_project_dir(), project, ignore=shutil.ignore_patterns("target", "logs", "*.py"))
    (project / "tests" / "assert_no_sessions_at_all.sql").write_text(
        "select session_uid from {{ ref('session_sequences') }}\n"
    )
    bad = DuckDBSource(warehouse=root / "wh.duckdb", synthetic=SMALL, dbt={"project_dir": str(project)})
    with pytest.raises(DataError, match="assert_no_sessions_at_all") as info:
        bad.load(tmp_path / "run")
    assert "\n" not in str(info.value)


def test_build_reuses_the_background_parse_manifest(tmp_path, monkeypatch):
    """The parse that runs beside the ingest hands its Manifest to the build (no second parse)."""
    from recframe.datasource import transform

    calls = []
    real = transform.run_dbt

    def spy(args, *a, **k):
        out = real(args, *a, **k)
        calls.append((args[0], k.get("manifest"), out))
        return out

    monkeypatch.setattr(transform, "run_dbt", spy)
    src = DuckDBSource(warehouse=tmp_path / "wh.duckdb", synthetic={**SMALL, "n_sessions": 300})
    src.build(tmp_path / "run")
    (parse, _, manifest), (build, handed, _) = calls
    assert (parse, build) == ("parse", "build") and handed is manifest
    assert type(manifest).__name__ == "Manifest" and src._parsed is None  # not kept after the build
    assert (tmp_path / "run" / "target" / "manifest.json").exists()  # lineage still has its manifest


@pytest.mark.parametrize(
    "corrupt",
    [
        "set timestamps = list_reverse(timestamps)",  # out of time order
        "set item_keys = item_keys[2:]",  # the stored item list disagrees with the length
    ],
)
def test_timestamps_ordered_test_catches_a_corrupt_session(built, tmp_path, corrupt):
    """The singular test the query relies on fails on a bad session, whichever list is wrong."""
    _, _, root = built
    shutil.copy2(root / "wh.duckdb", tmp_path / "wh.duckdb")
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    target = "(select session_id from int_sessions where reject_reason is null and n_kept >= 3 limit 1)"
    assert con.execute(f"update int_sessions {corrupt} where session_id = {target}").fetchall()[0][0] == 1
    con.close()
    src = DuckDBSource(warehouse=tmp_path / "wh.duckdb", synthetic=SMALL)
    with pytest.raises(DataError, match="assert_session_timestamps_ordered"):
        src._dbt(["test", "--select", "assert_session_timestamps_ordered"], tmp_path / "run")


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"split": {"test_days": 0}}, "datasource.split.test_days"),
        ({"split": {"min_length": 1}}, "datasource.split.min_length"),
        ({"split": {"start_date": "2019/01/01"}}, "datasource.split.start_date"),
        ({"raw": {"format": "parquetish"}}, "datasource.raw.format"),
        ({"raw": {"format": "coveo"}}, "datasource.raw.path"),
        ({"dbt": {"vars": {"actions": ["click"]}}}, "datasource.dbt.vars.actions[0]"),
        ({"synthetic": {"n_sessions": "many"}}, "datasource.synthetic.n_sessions"),
        ({"tenant": ""}, "datasource.tenant"),
    ],
)
def test_constructor_validates_without_io(tmp_path, kwargs, key):
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        DuckDBSource(warehouse=tmp_path / "never.duckdb", **kwargs)
    assert not (tmp_path / "never.duckdb").exists()


def test_relative_warehouse_path_builds_from_any_directory(tmp_path, monkeypatch):
    """The default warehouse (``.recframe/warehouse.duckdb``) is relative to the working directory;
    dbt must still write its manifest where recframe collects it (regression: it resolved the
    target path against the dbt project folder and the run lost its lineage)."""
    monkeypatch.chdir(tmp_path)
    src = DuckDBSource(warehouse=".recframe/warehouse.duckdb", synthetic={**SMALL, "n_sessions": 300})
    src.build(tmp_path / "run")
    assert (tmp_path / "run" / "target" / "manifest.json").exists()
    assert (tmp_path / "run" / "lineage.json").exists()
