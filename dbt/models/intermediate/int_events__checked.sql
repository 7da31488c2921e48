-- depends_on: {{ ref('int_build_cutoffs') }}
{{ config(materialized="view") }}
{#- The staged events, normalised, with recframe's action and a row-level reject reason (null =
    accepted): the quarantine rules. In an incremental build it holds only the source's tail (at least
    the rows from the cutoff on), so its consumers and data tests see only this build's rows. A view, like staging: read once for the accepted rows
    (int_events__sessionized) and once for the rejected ones (quarantine). Exact duplicates are
    collapsed downstream with a GROUP BY, which is much cheaper than a window over every column. -#}
{%- set start_ms = date_var_ms('start_date') -%}
{%- set end_ms = date_var_ms('end_date') -%}

with normalised as (
    select
        -- ids
        tenant,
        etl_id,
        nullif({{ trim_spaces('session_key') }}, '') as session_key,
        nullif({{ trim_spaces('user_key') }}, '') as user_key,
        {{ normalized_sku('sku') }} as sku,
        -- as stored: the DuckDB roll-up looks keys up by it (int_item_keys), and the checks below
        -- use it, so that lower() never runs per row where only emptiness or U+FFFD matters
        sku as sku_raw,
        -- event kind as read
        {{ trim_spaces('lower(event_type)') }} as event_type_raw,
        nullif({{ trim_spaces('lower(product_action)') }}, '') as product_action_raw,
        -- timestamps
        ts_raw,
        ts_ms,
        -- the timestamp as stored: an incremental build's cutoff filter reads it (staged_after_cutoff)
        ts_source,
        etl_epoch_ms,
        url
    from {{ ref('stg_events__raw_events') }}
    -- an incremental build reads only the tail of the source (macros/incremental_sessions.sql)
    where {{ source_tail_filter(built_cutoffs()) }}
),

mapped as (
    -- the action is the product action when the source has one (Coveo), else the event type
    select
        *,
        case
            when event_type_raw = 'pageview' then 'pageview'
            when coalesce(product_action_raw, event_type_raw) in ('detail', 'view', 'pv', 'click') then 'detail'
            when coalesce(product_action_raw, event_type_raw) in ('add', 'cart', 'add_to_cart') then 'add'
            when coalesce(product_action_raw, event_type_raw) in ('purchase', 'buy') then 'purchase'
            when coalesce(product_action_raw, event_type_raw) in ('remove', 'remove_from_cart') then 'remove'
            when coalesce(product_action_raw, event_type_raw) in ('fav', 'wishlist') then 'fav'
        end as action
    from normalised
)

select
    tenant,
    etl_id,
    session_key,
    user_key,
    sku,
    sku_raw,
    event_type_raw,
    product_action_raw,
    action,
    ts_raw,
    ts_ms,
    ts_source,
    url,
    case
        when session_key is null and user_key is null then 'null_session'
        -- a blank ts_raw never parses, so only unparsed rows need the (per-row) trim
        when ts_ms is null and (ts_raw is null or trim(ts_raw) = '') then 'null_timestamp'
        when ts_ms is null then 'malformed_timestamp'
        when ts_ms > etl_epoch_ms + {{ var('future_tolerance_hours') | int }} * 3600000 then 'future_timestamp'
        when action is null then 'unknown_action'
        when action <> 'pageview' and nullif({{ trim_spaces('sku_raw') }}, '') is null then 'null_item'
        when {{ contains_replacement_char('session_key') }} or {{ contains_replacement_char('user_key') }}
            or {{ contains_replacement_char('sku_raw') }} then 'invalid_encoding'
        {% if start_ms is not none %}when ts_ms < {{ start_ms }} then 'outside_date_window'{% endif %}
        {% if end_ms is not none %}when ts_ms >= {{ end_ms }} then 'outside_date_window'{% endif %}
    end as reject_reason
from mapped
