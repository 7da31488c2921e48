{{ config(materialized='view') }}
{#- One row per usable session: its kept product events (var('actions')) as time-ordered lists.
    This is the relation recframe's query reads; Python never re-sorts or re-sessionises.
    A view over int_sessions (incremental, delete+insert by tenant): copying a million sessions'
    lists into a second table cost more than the roll-up that built them. -#}
select
    s.tenant || '/' || s.session_id as session_uid,
    s.tenant,
    s.session_id,
    s.etl_id,
    s.start_ms as session_start_ms,
    s.end_ms as session_end_ms,
    {{ epoch_ms_to_timestamp('s.start_ms') }} as session_start,
    s.n_kept as length,
    s.items,
    s.actions,
    s.timestamps
from {{ ref('int_sessions') }} as s
where s.reject_reason is null
