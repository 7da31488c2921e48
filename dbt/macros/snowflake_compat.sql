{#- Snowflake-specific variants of the cross-dialect macros (dispatched before default__).

    list_is_sorted: on Snowflake `array_sort(x) = x` (the default) checks a whole list. fakesnow, the
    local Snowflake emulator recframe's tests run against, stores arrays as JSON: it cannot sort them,
    and it mixes rows up in a correlated FLATTEN (measured with fakesnow 0.12.1), so under
    `account: fakesnow` only the ends are compared (first <= last). The fakesnow tests check the full
    order in Python instead, and that Snowflake's sessions equal DuckDB's, where the full check runs.
    Real accounts always get the full check. -#}
{% macro snowflake__list_is_sorted(expr) -%}
  {%- if target.account | lower == 'fakesnow' -%}
  coalesce(get({{ expr }}, 0)::number <= get({{ expr }}, (array_size({{ expr }}) - 1)::integer)::number, true)
  {%- else -%}
  {{ recframe.default__list_is_sorted(expr) }}
  {%- endif -%}
{%- endmacro %}


{#- The temporary table an incremental model's delete+insert stages its new rows in. Snowflake gets
    dbt-snowflake's own statement (`create or replace temporary table ...`). fakesnow (DuckDB underneath)
    refuses database-qualified TEMPORARY tables, so every incremental re-build failed there; under
    `account: fakesnow` the staging table is transient instead (replaced by the next build). -#}
{% macro snowflake__create_table_temporary_sql(relation, compiled_code) -%}
  {%- if target.account | lower == 'fakesnow' -%}
  create or replace transient table {{ relation }} as ({{ compiled_code }})
  {%- else -%}
  {{ dbt.snowflake__create_table_temporary_sql(relation, compiled_code) }}
  {%- endif -%}
{%- endmacro %}
