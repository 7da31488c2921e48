{#- not_null for several columns of one model in one test: the rows where any of `columns` is null.
    The same check as dbt's not_null on each column, in one scan and one node: each test is a node
    dbt compiles, runs and records on its own (about 35 ms of CPU on an incremental build, a third
    of whose nodes were not_null tests), so one per model instead of one per column. Scoped like
    the built-in tests by its `where` config (macros/rebuilt_rows.sql). -#}
{% test not_null_columns(model, columns) %}
select *
from {{ model }}
where {% for c in columns %}{{ c }} is null{% if not loop.last %} or {% endif %}{% endfor %}
{% endtest %}
