{#- Every raw row of the current loads that did not reach a session, with the reason. Together with
    the accepted rows of int_events__sessionized this accounts for every input row:
    rows in = accepted + quarantined. -#}
select
    tenant,
    etl_id,
    reject_reason as reason,
    coalesce(session_key, user_key) as session_key,
    sku,
    event_type_raw,
    product_action_raw,
    ts_raw
from {{ ref('stg_events__raw_events') }}
where reject_reason is not null

union all

select
    tenant,
    etl_id,
    session_reject_reason as reason,
    session_id as session_key,
    sku,
    event_type_raw,
    product_action_raw,
    ts_raw
from {{ ref('int_events__sessionized') }}
where session_reject_reason is not null
