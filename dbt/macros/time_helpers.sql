{#- Epoch milliseconds (bigint) -> timestamp without time zone, in UTC. -#}
{% macro epoch_ms_to_timestamp(expr) -%}
  {{ return(adapter.dispatch('epoch_ms_to_timestamp', 'recframe')(expr)) }}
{%- endmacro %}

{% macro default__epoch_ms_to_timestamp(expr) -%}
  to_timestamp_ntz({{ expr }}, 3)
{%- endmacro %}

{% macro duckdb__epoch_ms_to_timestamp(expr) -%}
  make_timestamp(({{ expr }}) * 1000)
{%- endmacro %}


{#- A 'YYYY-MM-DD' var rendered as an epoch-millisecond literal (computed in Jinja, so it is the same
    number in every dialect), or none when the var is null. -#}
{% macro date_var_ms(name) -%}
  {%- set value = var(name) -%}
  {%- if value is none or value == '' -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set d = modules.datetime.datetime.strptime(value | string, '%Y-%m-%d') -%}
  {%- set epoch = modules.datetime.datetime(1970, 1, 1) -%}
  {{ return(((d - epoch).total_seconds() * 1000) | int) }}
{%- endmacro %}


{#- A list var rendered as a SQL list of string literals: ('a', 'b'). -#}
{% macro sql_string_list(values) -%}
  ({%- for v in values -%}'{{ v | replace("'", "''") }}'{%- if not loop.last %}, {% endif -%}{%- endfor -%})
{%- endmacro %}


{#- True when a text value carries U+FFFD, the mark of bytes replaced by an upstream decoder. -#}
{% macro contains_replacement_char(expr) -%}
  coalesce(position('{{ "\ufffd" }}' in {{ expr }}) > 0, false)
{%- endmacro %}


{#- trim(expr): leading and trailing spaces removed (both warehouses' trim() strips spaces only). On
    DuckDB the common case (no space at either end) returns the value itself: trim() allocates a new
    string per row, which on 10M 64-character ids is a measurable share of the staging pass. -#}
{% macro trim_spaces(expr) -%}
  {{ return(adapter.dispatch('trim_spaces', 'recframe')(expr)) }}
{%- endmacro %}

{% macro default__trim_spaces(expr) -%}
  trim({{ expr }})
{%- endmacro %}

{% macro duckdb__trim_spaces(expr) -%}
  case when starts_with({{ expr }}, ' ') or ends_with({{ expr }}, ' ') then trim({{ expr }}) else {{ expr }} end
{%- endmacro %}


{#- A raw SKU as every model compares it: lower case, without surrounding spaces, blank -> null.
    lower() first: on a dictionary-compressed column DuckDB runs it once per distinct value; after
    trim it would run once per row (trim and lower commute). -#}
{% macro normalized_sku(expr) -%}
  nullif({{ trim_spaces('lower(' ~ expr ~ ')') }}, '')
{%- endmacro %}


{#- A timestamp written as text (`expr`) in epoch milliseconds; null when it does not parse. `unit`
    says how it is written: ms or s (epoch numbers) or timestamp (ISO-like text, an optional trailing
    ' UTC' as in REES46). The ingest step computes the same with the same rules
    (recframe.datasource.warehouse); an in-place source is parsed here. -#}
{% macro ts_ms_from_text(expr, unit) -%}
  {{ return(adapter.dispatch('ts_ms_from_text', 'recframe')(expr, unit)) }}
{%- endmacro %}

{% macro default__ts_ms_from_text(expr, unit) -%}
  {%- if unit == 'ms' -%}
  cast(try_to_double({{ expr }}) as bigint)
  {%- elif unit == 's' -%}
  cast(round(try_to_double({{ expr }}) * 1000) as bigint)
  {%- else -%}
  date_part(epoch_millisecond, try_to_timestamp_ntz(regexp_replace({{ expr }}, '\\s*UTC$', '')))
  {%- endif -%}
{%- endmacro %}

{% macro duckdb__ts_ms_from_text(expr, unit) -%}
  {%- if unit == 'ms' -%}
  cast(try_cast({{ expr }} as double) as bigint)
  {%- elif unit == 's' -%}
  cast(round(try_cast({{ expr }} as double) * 1000) as bigint)
  {%- else -%}
  epoch_ms(try_cast(regexp_replace({{ expr }}, '\s*UTC$', '') as timestamp))
  {%- endif -%}
{%- endmacro %}
