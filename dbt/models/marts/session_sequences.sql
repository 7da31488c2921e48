{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='tenant') }}
{#- One row per usable session: its kept product events (var('actions')) as time-ordered lists.
    This is the table recframe's query reads; Python never re-sorts or re-sessionises.
    Incremental with delete+insert on tenant: a build replaces the sessions of the tenants it covers
    (var('tenant'), or all) and leaves every other tenant's sessions in place. -#}
select
    s.tenant || '/' || s.session_id as session_uid,
    s.tenant,
    s.session_id,
    l.etl_id,
    s.start_ms as session_start_ms,
    s.end_ms as session_end_ms,
    {{ epoch_ms_to_timestamp('s.start_ms') }} as session_start,
    s.n_kept as length,
    s.items,
    s.actions,
    s.timestamps
from {{ ref('int_sessions') }} as s
inner join {{ ref('stg_events__current_loads') }} as l
    on s.tenant = l.tenant
where s.reject_reason is null
