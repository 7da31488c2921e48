{#- unique for a key of several columns: the key values held by more than one row. Scoped like the
    built-in tests by its `where` config (macros/rebuilt_rows.sql). -#}
{% test unique_columns(model, columns) %}
select {{ columns | join(', ') }}, count(*) as n_rows
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
