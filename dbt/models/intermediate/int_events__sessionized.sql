{#- Accepted events cut into sessions. Sources with a session id keep it; sources with only a user id
    (e.g. Taobao) start a new session after `session_gap_minutes` of inactivity. Session-level rejects
    (no product events, a single event, more than `max_session_length` kept events) are marked here. -#}
{%- set gap_ms = (var('session_gap_minutes') | float * 60000) | int -%}

with accepted as (
    select *
    from {{ ref('stg_events__raw_events') }}
    where reject_reason is null
),

gaps as (
    select
        *,
        case
            when session_key is not null then 0
            when lag(ts_ms) over (partition by tenant, user_key order by ts_ms, sku, action) is null then 1
            when ts_ms - lag(ts_ms) over (partition by tenant, user_key order by ts_ms, sku, action) > {{ gap_ms }}
                then 1
            else 0
        end as starts_session
    from accepted
),

numbered as (
    select
        *,
        sum(starts_session) over (
            partition by tenant, user_key order by ts_ms, sku, action rows between unbounded preceding and current row
        ) as user_session_number
    from gaps
),

sessioned as (
    select
        tenant,
        etl_id,
        coalesce(session_key, user_key || '-' || cast(user_session_number as varchar)) as session_id,
        user_key,
        sku,
        action,
        event_type_raw,
        product_action_raw,
        ts_raw,
        ts_ms,
        case when action in {{ sql_string_list(var('actions')) }} then 1 else 0 end as is_kept
    from numbered
),

sized as (
    select
        *,
        sum(is_kept) over (partition by tenant, session_id) as session_length,
        row_number() over (
            partition by tenant, session_id
            order by ts_ms, case action when 'pageview' then 0 when 'detail' then 1 when 'add' then 2
                               when 'remove' then 3 when 'purchase' then 4 else 5 end, sku
        ) as event_seq
    from sessioned
)

select
    *,
    case
        when session_length = 0 then 'no_product_events'
        when session_length = 1 then 'single_event_session'
        when session_length > {{ var('max_session_length') | int }} then 'bot_session'
    end as session_reject_reason
from sized
