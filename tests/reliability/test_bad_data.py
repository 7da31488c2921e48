"""A corpus of bad raw data through the real CLI and the real DuckDB + dbt build.

Sixteen kinds of defect in one Coveo-schema file (beside a healthy base, so the run can finish),
and four bad whole files. Every input row is accounted for: rows in = accepted + quarantined, each
quarantined row with its reason; a file that cannot produce sessions stops before training with
one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from recframe.datasource.duckdb import DuckDBSource
from recframe.interfaces import DataError
from tests.reliability.runner import NO_DEPLOY, assert_one_line_error, run_cli

HEADER = "session_id_hash,event_type,product_action,product_sku_hash,server_timestamp_epoch_ms,hashed_url\n"
T0 = 1_550_000_000_000
DAY = 86_400_000
BOT_EVENTS = 100_000


def _row(session, sku, ts, action="detail", event_type="event_product", url="u"):
    return f"{session},{event_type},{action},{sku},{ts},{url}\n"


def _corpus(path: Path) -> tuple[dict, dict[str, tuple[str, str, int]], int, int]:
    """Write the corpus; return expected reasons, {kind: (marker, reason, rows)}, rows in, accepted."""
    rows: list[str] = []
    # healthy base: 600 sessions of 3-5 views over 21 days (enough for train/valid/test and pop)
    for s in range(600):
        start = T0 + (s * 21 * DAY) // 600
        rows += [_row(f"ok{s:04d}", f"sku{(s + j) % 40}", start + j * 60_000) for j in range(3 + s % 3)]
    accepted = len(rows)
    kinds: dict[str, tuple[str, str, int]] = {}

    def block(kind: str, marker: str, reason: str, lines: list[str]) -> None:
        rows.extend(lines)
        kinds[kind] = (marker, reason, len(lines))

    t = T0 + 5 * DAY
    block("null session id", "", "null_session", [_row("", "sku1", t + i) for i in range(3)])
    block("null timestamp", "k_nullts", "null_timestamp", [_row("k_nullts", "sku1", "") for _ in range(2)])
    block(
        "malformed timestamp",
        "k_badts",
        "malformed_timestamp",
        [_row("k_badts", "sku1", v) for v in ("yesterday", "1.5.5", "12:00")],
    )
    block("future timestamp (2100)", "k_future", "future_timestamp", [_row("k_future", "sku1", 4_102_444_800_000)] * 2)
    block(
        "unknown action", "k_action", "unknown_action", [_row("k_action", "sku1", t + i, "explode") for i in range(2)]
    )
    block(
        "null event type and action",
        "k_nulltype",
        "unknown_action",
        [_row("k_nulltype", "sku1", t + i, action="", event_type="") for i in range(2)],
    )
    block("null sku on a product event", "k_nullsku", "null_item", [_row("k_nullsku", "", t + i) for i in range(2)])
    block("U+FFFD in the sku", "k_fffd", "invalid_encoding", [_row("k_fffd", "sk\ufffdu", t + i) for i in range(2)])
    block(
        "single-event sessions",
        "k_single",
        "single_event_session",
        [_row(f"k_single{i}", "sku3", t) for i in range(3)],
    )
    block(
        "pageview-only session",
        "k_pv",
        "no_product_events",
        [_row("k_pv", "", t + i, action="", event_type="pageview") for i in range(2)],
    )
    block(
        "100k-event bot session",
        "k_bot",
        "bot_session",
        [_row("k_bot", f"sku{i % 50}", t + i) for i in range(BOT_EVENTS)],
    )
    # exact duplicates: 3 distinct events accepted, 2 extra copies quarantined as duplicate
    dup = [_row("k_dup", f"sku{i}", t + i) for i in range(3)]
    rows += dup + dup[:2]
    accepted += 3
    kinds["duplicated rows"] = ("k_dup", "duplicate", 2)
    # a null url is not a defect: accepted
    rows += [_row("k_nullurl", f"sku{i}", t + i, url="") for i in range(3)]
    accepted += 3
    kinds["null url (accepted)"] = ("k_nullurl", "accepted", 3)

    body = (HEADER + "".join(rows)).encode()
    # reader-level defects: invalid UTF-8 bytes, truncated lines, too many columns
    raw_lines = {
        "invalid UTF-8 bytes": (
            b"k_enc",
            "invalid_encoding",
            [b"k_enc,event_product,detail,sku\xff\xfe1,%d,u\n" % t] * 2,
        ),
        "truncated lines": (b"k_trunc", "malformed_row", [b"k_trunc,event_product,detail\n", b"k_trunc,event_pro\n"]),
        "wrong column count (too many)": (
            b"k_wide",
            "malformed_row",
            [b"k_wide,event_product,detail,sku1,%d,u,extra,columns\n" % t] * 2,
        ),
    }
    for kind, (marker, reason, lines) in raw_lines.items():
        body += b"".join(lines)
        kinds[kind] = (marker.decode(), reason, len(lines))
    path.write_bytes(body)

    n_in = len(rows) + sum(len(v[2]) for v in raw_lines.values())
    expected: dict[str, int] = {}
    for _marker, reason, n in kinds.values():
        if reason != "accepted":
            expected[reason] = expected.get(reason, 0) + n
    return expected, kinds, n_in, accepted


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "browsing_train.csv"
    return path, *_corpus(path)


def test_bad_data_corpus_through_the_cli_every_row_accounted(corpus, tmp_path):
    path, expected, kinds, n_in, accepted = corpus
    assert len(kinds) >= 16
    run_dir = tmp_path / "run"
    args = ["datasource.raw.format=coveo", f"datasource.raw.path={path}", "model=pop", *NO_DEPLOY]
    out = run_cli([*args, f"hydra.run.dir={run_dir}"], tmp_path / "home", timeout=400)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    stats = json.loads((run_dir / "data" / "manifest.json").read_text())["stats"]
    assert stats["raw_rows"] == n_in
    assert stats["accepted"] == accepted
    assert stats["quarantined"] == n_in - accepted
    assert stats["rows_accounted"] is True
    assert stats["quarantine_reasons"] == expected
    assert json.loads((run_dir / "metrics.json").read_text())["targets"] > 0  # the run finished

    # each kind landed under its own reason (row-level by session key, reader-level by the raw line)
    con = duckdb.connect(str(tmp_path / "home" / "warehouse.duckdb"), read_only=True)
    try:
        for kind, (marker, reason, n) in kinds.items():
            if reason == "accepted":
                got = con.execute(
                    "select coalesce(sum(n_events), 0) from int_sessions "
                    "where session_id = ? and reject_reason is null",
                    [marker],
                ).fetchall()[0][0]
                assert got == n, kind
                continue
            if reason in ("malformed_row",) or kind == "invalid UTF-8 bytes":
                sql = (
                    "select reason, sum(n_rows) from quarantine where session_key is null and ts_raw like ? group by 1"
                )
                arg = f"{marker}%"
            elif marker == "":
                sql = (
                    "select reason, sum(n_rows) from quarantine where session_key is null and ts_raw like ? group by 1"
                )
                arg = f"{(T0 + 5 * DAY) // 10}_"  # found by its timestamps t, t+1, t+2
            else:
                sql = "select reason, sum(n_rows) from quarantine where session_key like ? group by 1"
                arg = f"{marker}%"
            assert {r: int(c) for r, c in con.execute(sql, [arg]).fetchall()} == {reason: n}, kind
    finally:
        con.close()


def test_an_empty_file_stops_before_anything_with_one_line(tmp_path):
    empty = tmp_path / "events.csv"
    empty.write_bytes(b"")
    run_dir = tmp_path / "run"
    args = ["datasource.raw.format=coveo", f"datasource.raw.path={empty}", "model=pop", *NO_DEPLOY]
    out = run_cli([*args, f"hydra.run.dir={run_dir}"], tmp_path / "home")
    line = assert_one_line_error(out, "is empty", str(empty))
    assert out.returncode == 1, line
    assert not (run_dir / "data" / "manifest.json").exists() and not (run_dir / "model").exists()


@pytest.mark.parametrize(
    ("kind", "body", "needle"),
    [
        ("empty file", b"", "is empty"),
        ("header-only file", HEADER.encode(), "no data rows"),
        ("binary garbage", bytes(range(256)) * 40, "cannot read raw events"),
        ("other columns than the format's", b"a,b,c\n1,2,3\n4,5,6\n", "cannot read raw events"),
    ],
)
def test_unusable_files_are_one_line_data_errors(kind, body, needle, tmp_path):
    path = tmp_path / "events.csv"
    path.write_bytes(body)
    src = DuckDBSource(warehouse=tmp_path / "wh.duckdb", raw={"format": "coveo", "path": str(path)})
    with pytest.raises(DataError, match=needle) as e:
        src.load(tmp_path / "run")
    assert "\n" not in str(e.value), kind
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    try:  # the failed load left nothing behind
        assert con.execute("select count(*) from raw.loads").fetchall()[0][0] == 0
        assert con.execute("select count(*) from raw.events").fetchall()[0][0] == 0
    finally:
        con.close()


@pytest.mark.slow
def test_a_file_of_only_bad_rows_is_accounted_then_stops_before_training(tmp_path):
    path = tmp_path / "events.csv"
    lines = [_row("", "sku1", T0), _row("a", "sku1", "soon"), _row("b", "", T0), _row("c", "sku1", T0)]
    path.write_text(HEADER + "".join(lines))
    src = DuckDBSource(warehouse=tmp_path / "wh.duckdb", tenant="bad", raw={"format": "coveo", "path": str(path)})
    with pytest.raises(DataError, match="no sessions") as e:
        src.load(tmp_path / "run")
    assert "\n" not in str(e.value)
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    try:
        reasons = dict(con.execute("select reason, sum(n_rows) from quarantine group by 1").fetchall())
        accepted = con.execute("select count(*) from session_sequences").fetchall()[0][0]
    finally:
        con.close()
    assert {k: int(v) for k, v in reasons.items()} == {
        "null_session": 1,
        "malformed_timestamp": 1,
        "null_item": 1,
        "single_event_session": 1,
    }
    assert accepted == 0
