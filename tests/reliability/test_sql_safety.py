"""Values from config that reach SQL text (tenant, custom column names, headerless names, the CSV
delimiter, catalogue columns) are validated before any work: a malicious value is one ConfigError
naming the key, through the API and through the CLI (exit 2, one line)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recframe.datasource.duckdb import DuckDBSource
from recframe.interfaces import ConfigError
from tests.reliability.runner import run_cli

COLUMNS = {"session_key": "a", "sku": "b", "ts_raw": "c", "event_type": "d"}
EVIL = "x'; DROP TABLE raw.events; --"


@pytest.fixture()
def csv(tmp_path: Path) -> str:
    p = tmp_path / "events.csv"
    p.write_text("a,b,c,d\ns1,sku1,1700000000000,view\n")
    return str(p)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"tenant": EVIL}, "datasource.tenant"),
        ({"raw": {"columns": {**COLUMNS, "sku": EVIL}}}, "datasource.raw.columns.sku"),
        ({"raw": {"columns": {**COLUMNS, "session_key": 'a" OR 1=1 --'}}}, "datasource.raw.columns.session_key"),
        ({"raw": {"columns": COLUMNS, "names": ["a", EVIL, "c", "d"], "header": False}}, "datasource.raw.names[1]"),
        ({"raw": {"columns": COLUMNS, "delimiter": "', header=true, x='"}}, "datasource.raw.delimiter"),
        ({"raw": {"columns": COLUMNS, "delimiter": "'"}}, "datasource.raw.delimiter"),
        ({"raw": {"columns": COLUMNS, "item_columns": {"sku": EVIL}}}, "datasource.raw.item_columns.sku"),
    ],
)
def test_malicious_values_are_refused(csv: str, tmp_path: Path, kwargs: dict, key: str) -> None:
    raw = {"format": "custom", "path": csv, **kwargs.pop("raw", {"columns": COLUMNS})}
    with pytest.raises(ConfigError) as e:
        DuckDBSource(warehouse=tmp_path / "wh.duckdb", raw=raw, **kwargs)
    assert key in str(e.value)
    assert not (tmp_path / "wh.duckdb").exists()  # refused before any work


def test_plain_names_and_a_tab_delimiter_are_accepted(csv: str, tmp_path: Path) -> None:
    raw = {"format": "custom", "path": csv, "columns": {**COLUMNS, "sku": "Product SKU-id.v2"}, "delimiter": "\t"}
    assert DuckDBSource(warehouse=tmp_path / "wh.duckdb", raw=raw).format.delimiter == "\t"


def test_cli_refuses_with_one_line_and_exit_2(csv: str, tmp_path: Path) -> None:
    proc = run_cli(
        ["datasource.raw.format=custom", f"datasource.raw.path={csv}", "+datasource.raw.columns.sku=b'--"],
        tmp_path / "home",
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "datasource.raw.columns.sku" in lines[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
