{{ config(materialized="ephemeral") }}
{#- Accepted events, each with a session id (exact duplicates are removed by int_sessions). Sources with a
    session id keep it; rows with only a user id (e.g. Taobao) are cut into sessions after
    var('session_gap_minutes') of inactivity. The two cases are separate branches of a union so that
    the window runs only over user-keyed rows (partitioning keyed rows by a null user id would sort
    them all as one partition). Ephemeral: only int_sessions reads it, so the 10M-row event level is
    never written to disk; narrow on purpose: the raw text columns stay in staging. -#}
{%- set gap_ms = (var('session_gap_minutes') | float * 60000) | int -%}
{#- Each branch reads staging itself: a CTE read by both would be materialised (every accepted event
    buffered once more). var('sessionize_by_user') is false when the raw format has no user column:
    then a row without a session id has no user id either, is quarantined as null_session, and the
    gap-based branch (a second pass over staging) would always be empty, so it is left out. -#}

with keyed as (
    select
        tenant,
        session_key as session_id,
        sku,
        sku_raw,
        action,
        ts_ms
    from {{ ref('int_events__checked') }}
    where reject_reason is null and session_key is not null
),
{%- if var('sessionize_by_user', true) %}

user_gaps as (
    select
        tenant,
        user_key,
        sku,
        sku_raw,
        action,
        ts_ms,
        case
            when ts_ms - lag(ts_ms) over (partition by tenant, user_key order by ts_ms, sku, action)
                <= {{ gap_ms }} then 0
            else 1
        end as starts_session
    from {{ ref('int_events__checked') }}
    where reject_reason is null and session_key is null
),

user_sessions as (
    select
        tenant,
        user_key || '-' || cast(sum(starts_session) over (
            partition by tenant, user_key order by ts_ms, sku, action rows between unbounded preceding and current row
        ) as varchar) as session_id,
        sku,
        sku_raw,
        action,
        ts_ms
    from user_gaps
),
{%- endif %}

sessioned as (
    select * from keyed
    {%- if var('sessionize_by_user', true) %}
    union all
    select * from user_sessions
    {%- endif %}
)

select
    tenant,
    session_id,
    sku,
    sku_raw,
    action,
    {{ action_rank('action') }} as action_rank,
    case when action in {{ sql_string_list(var('actions')) }} then 1 else 0 end as is_kept,
    ts_ms
from sessioned
