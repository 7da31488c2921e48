{#- Aggregate `expr` into a list ordered by `order_by`: the one construct whose spelling differs between
    the warehouses recframe runs on, so models call this macro and never the dialect's syntax. -#}
{% macro ordered_list_agg(expr, order_by) -%}
  {{ return(adapter.dispatch('ordered_list_agg', 'recframe')(expr, order_by)) }}
{%- endmacro %}

{% macro default__ordered_list_agg(expr, order_by) -%}
  array_agg({{ expr }}) within group (order by {{ order_by }})
{%- endmacro %}

{% macro duckdb__ordered_list_agg(expr, order_by) -%}
  list({{ expr }} order by {{ order_by }})
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
