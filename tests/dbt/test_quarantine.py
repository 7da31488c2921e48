"""Bad raw data is quarantined with a reason, and every input row is accounted for (real dbt build)."""

from __future__ import annotations

import duckdb
import pytest

from recframe.datasource.duckdb import DuckDBSource

HEADER = "session_id_hash,event_type,product_action,product_sku_hash,server_timestamp_epoch_ms,hashed_url\n"
T0 = 1_550_000_000_000


def _row(session, sku, ts, action="detail", event_type="event_product", url="u"):
    return f"{session},{event_type},{action},{sku},{ts},{url}\n"


@pytest.fixture(scope="module")
def bad_csv(tmp_path_factory):
    """A Coveo-schema file with one kind of defect per block; expected reasons and row counts beside it."""
    rows: list[str] = []
    # accepted: 3 views + a pageview; and a session with an exact duplicate (2 distinct + 1 copy)
    rows += [_row("ok1", f"sku{i}", T0 + i * 1000) for i in range(3)]
    rows += [_row("ok1", "", T0 + 500, action="", event_type="pageview")]
    rows += [_row("ok2", "SKU1 ", T0 + 10), _row("ok2", "sku2", T0 + 20), _row("ok2", "sku2", T0 + 20)]
    expected = {"duplicate": 1}
    # row-level defects
    rows += [_row("", "sku1", T0)]  # no session (and no user): null_session
    rows += [_row("r1", "sku1", "")]  # null_timestamp
    rows += [_row("r2", "sku1", "yesterday")]  # malformed_timestamp
    rows += [_row("r3", "sku1", 4_102_444_800_000)]  # 2100-01-01: future_timestamp
    rows += [_row("r4", " SKU1", T0, action="explode")]  # unknown_action (its SKU is kept normalised)
    rows += [_row("r5", "", T0)]  # product event without sku: null_item
    rows += [_row("r6", "sk\ufffdu1", T0)]  # U+FFFD (a replaced byte upstream) in the SKU
    expected.update(
        null_session=1, null_timestamp=1, malformed_timestamp=1, future_timestamp=1, unknown_action=1, null_item=1
    )
    # session-level defects
    rows += [_row("single", "sku1", T0)]  # single_event_session
    rows += [_row("pv_only", "", T0, action="", event_type="pageview")] * 1 + [
        _row("pv_only", "", T0 + 1, action="", event_type="pageview")
    ]  # no_product_events (2 rows)
    rows += [_row("bot", f"sku{i % 7}", T0 + i) for i in range(30)]  # 30 > max_session_length=20: bot_session
    expected.update(single_event_session=1, no_product_events=2, bot_session=30)
    path = tmp_path_factory.mktemp("bad") / "browsing_train.csv"
    body = (HEADER + "".join(rows)).encode()
    # reader-level defects: invalid UTF-8 bytes, and a line with too many columns
    body += b"enc,event_product,detail,sku\xff\xfe1," + str(T0).encode() + b",u\n"
    body += b"wide,event_product,detail,sku1," + str(T0).encode() + b",u,extra,columns\n"
    path.write_bytes(body)
    expected.update(malformed_row=1)
    expected["invalid_encoding"] = 2  # the reader's reject + the U+FFFD row
    n_rows = len(rows) + 2
    accepted = 4 + 2  # ok1 (3 views + pageview) and ok2 (2 distinct events)
    return path, expected, n_rows, accepted


def test_every_row_is_accepted_or_quarantined_with_its_reason(bad_csv, tmp_path):
    path, expected, n_rows, accepted = bad_csv
    src = DuckDBSource(
        warehouse=tmp_path / "wh.duckdb",
        tenant="bad",
        raw={"format": "coveo", "path": str(path)},
        dbt={"vars": {"max_session_length": 20}},
    )
    load = src.build(tmp_path / "run")
    assert load.n_rows == n_rows
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    try:
        reasons = dict(con.execute("select reason, sum(n_rows) from quarantine group by reason").fetchall())
        got_accepted = con.execute("select sum(n_events) from int_sessions where reject_reason is null").fetchall()
        sessions = con.execute("select session_id, items from session_sequences order by session_id").fetchall()
        unknown = con.execute("select session_key, sku from quarantine where reason = 'unknown_action'").fetchall()
    finally:
        con.close()
    assert {k: int(v) for k, v in reasons.items()} == expected
    assert unknown == [("r4", "sku1")]
    assert int(got_accepted[0][0]) == accepted
    assert accepted + sum(expected.values()) == n_rows
    # SKUs are normalised (trimmed, lower-cased) and the duplicate collapsed
    assert sessions == [("ok1", ["sku0", "sku1", "sku2"]), ("ok2", ["sku1", "sku2"])]
