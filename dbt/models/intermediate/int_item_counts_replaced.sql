-- depends_on: {{ ref('int_build_cutoffs') }}
-- depends_on: {{ ref('stg_events__current_loads') }}
{{ config(materialized='table') }}
{#- What `items` must take off its counts in an incremental build: the kept events per item of the
    accepted sessions that int_sessions' pre-hook is about to delete (those it rebuilds), counted
    while they are still there (int_sessions depends on this model). `items` then adds the counts of
    the rebuilt sessions instead of recounting every session. The same rows as the pre-hook deletes
    (delete_rebuilt_sessions: the build's tenants, from their cutoff on by `first_ms`). Empty when
    the build is a full one, or when `items` could not use it (items_can_update()). -#}
{%- set cuts = built_cutoffs() %}
{%- set built = built_sessions_relation() if items_can_update(cuts) else none %}
{%- if built is not none %}
{%- set replaced -%}
    (select * from {{ built }}
     where reject_reason is null
       and tenant in (select tenant from {{ ref('stg_events__current_loads') }})
       and ({{ after_cutoff(cuts, 'tenant', 'first_ms') }}))
{%- endset %}
{{ item_counts(replaced) }}
{%- else %}
select
    cast(null as varchar) as tenant,
    cast(null as {{ 'integer' if item_count_key() == 'item_key' else 'varchar' }}) as {{ item_count_key() }},
    cast(null as bigint) as n_events
where 1 = 0
{%- endif %}
