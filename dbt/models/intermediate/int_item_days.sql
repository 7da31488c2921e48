-- depends_on: {{ ref('int_build_cutoffs') }}
{{ config(
    materialized='incremental', incremental_strategy='append', on_schema_change='sync_all_columns',
    pre_hook="{{ delete_rebuilt_item_days(built_cutoffs()) }}", tmp_relation_type='table',
) }}
{#- Each item's kept events in accepted sessions, per tenant and day of the sessions' first event
    (item_day_counts in macros/session_lists.sql; by key on DuckDB): what `items` sums its popularity
    from. Incremental by day (macros/incremental_sessions.sql): an incremental build deletes (pre-hook)
    and counts again only the days from the day of each tenant's cutoff on, which hold every session
    int_sessions rebuilt, so `items` never re-reads every session's list; a tenant rebuilt in full is
    counted again in full. -#}
{%- set cuts = day_cutoffs(built_cutoffs()) if is_incremental() else {} %}
{%- set in_scope -%}
    (select tenant, first_ms, {{ session_item_list() }}
     from {{ ref('int_sessions') }}
     where reject_reason is null
         and tenant in (select tenant from {{ ref('stg_events__current_loads') }})
         and {{ after_cutoff(cuts, 'tenant', 'first_ms') }})
{%- endset %}
{{ item_day_counts(in_scope) }}
