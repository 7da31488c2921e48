{#- One row per session of the current build: its size, duplicates, its kept events as time-ordered
    lists, and a session-level reject reason: no_product_events (no kept action),
    single_event_session, bot_session (more kept events than var('max_session_length')).
    One GROUP BY over the (ephemeral) events does all of it, so no model re-scans events. -#}
{%- set fields = {'items': 'sku', 'actions': 'action', 'timestamps': 'ts_ms'} -%}

with aggregated as (
    select
        tenant,
        session_id,
        count(*) as n_events,
        cast(sum(n_copies) - count(*) as bigint) as n_duplicates,
        cast(sum(is_kept) as bigint) as n_kept,
        min(case when is_kept = 1 then ts_ms end) as start_ms,
        max(case when is_kept = 1 then ts_ms end) as end_ms,
        {{ session_lists_agg('ts_ms * 8 + action_rank', fields, 'is_kept = 1') }}
    from {{ ref('int_events__sessionized') }}
    group by tenant, session_id
)

select
    tenant,
    session_id,
    n_events,
    n_duplicates,
    n_kept,
    start_ms,
    end_ms,
    {{ session_lists_unpack(fields) }},
    case
        when n_kept = 0 then 'no_product_events'
        when n_kept = 1 then 'single_event_session'
        when n_kept > {{ var('max_session_length') | int }} then 'bot_session'
    end as reject_reason
from aggregated
