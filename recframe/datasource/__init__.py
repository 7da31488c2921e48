"""Data sources: raw events -> warehouse -> dbt -> session sequences -> train/valid/test.

Implementations (imported lazily by their config's ``_target_``, so importing this package costs nothing):
``duckdb.DuckDBSource`` (embedded default), ``files.FilesSource`` (already-sessionised
files), ``snowflake.SnowflakeSource``. Shared pieces: ``synthetic`` (the raw-event generator),
``formats`` (raw format mappings), ``warehouse`` (append-only ingest), ``transform`` (in-process dbt),
``split`` (time split and leakage guards). See docs/data.md.
"""
