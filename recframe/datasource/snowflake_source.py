"""Snowflake data source (placeholder until the Snowflake issue lands).

The config (``conf/datasource/snowflake.yaml``) already composes, so ``datasource=snowflake --cfg job``
works; running it fails fast with one line instead of a traceback. The real implementation runs the
same dbt project through dbt-snowflake (see docs/data.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recframe.datasource.duckdb_source import validate_split
from recframe.interfaces import Dataset, DataSource, RecframeError


class SnowflakeSource(DataSource):
    """Raw events in Snowflake, built by the packaged dbt project through dbt-snowflake (not yet available).

    Constructor arguments mirror ``conf/datasource/snowflake.yaml``; credentials are kept in memory only.
    """

    def __init__(
        self,
        account: str | None = None,
        user: str | None = None,
        password: str | None = None,
        role: str | None = None,
        warehouse: str | None = None,
        database: str | None = None,
        schema: str | None = None,
        tenant: str = "default",
        raw: Mapping[str, Any] | None = None,
        synthetic: Mapping[str, Any] | None = None,
        dbt: Mapping[str, Any] | None = None,
        split: Mapping[str, Any] | None = None,
    ) -> None:
        self.account, self.user, self._password = account, user, password
        self.role, self.warehouse, self.database, self.schema = role, warehouse, database, schema
        self.tenant = tenant
        self.raw, self.synthetic, self.dbt = dict(raw or {}), dict(synthetic or {}), dict(dbt or {})
        self.split = validate_split(dict(split or {}))

    def __repr__(self) -> str:  # never show the password
        return f"SnowflakeSource(account={self.account!r}, user={self.user!r}, database={self.database!r})"

    def check(self) -> None:
        try:
            import snowflake.connector  # noqa: F401
        except ImportError:
            raise RecframeError(
                "snowflake datasource needs the Snowflake connector and dbt-snowflake: "
                "`pip install recframe[snowflake]`"
            ) from None
        raise RecframeError(
            "snowflake datasource is not available in this version yet: use datasource=duckdb (the default)"
        )

    def load(self, work_dir: Path) -> Dataset:
        self.check()
        raise AssertionError("unreachable")  # pragma: no cover
