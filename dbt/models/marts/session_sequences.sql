{#- One row per usable session: its kept product events (var('actions')) as time-ordered lists.
    This is the table recframe's query reads; Python never re-sorts or re-sessionises. -#}
with events as (
    select *
    from {{ ref('int_events__sessionized') }}
    where session_reject_reason is null and is_kept = 1
)

select
    tenant || '/' || session_id as session_uid,
    tenant,
    session_id,
    max(etl_id) as etl_id,
    min(ts_ms) as session_start_ms,
    max(ts_ms) as session_end_ms,
    {{ epoch_ms_to_timestamp('min(ts_ms)') }} as session_start,
    count(*) as length,
    {{ ordered_list_agg('sku', 'event_seq') }} as items,
    {{ ordered_list_agg('action', 'event_seq') }} as actions,
    {{ ordered_list_agg('ts_ms', 'event_seq') }} as timestamps
from events
group by tenant, session_id
