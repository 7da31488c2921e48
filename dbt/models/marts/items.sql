{#- The item catalogue: every SKU seen in a kept event, with category and price bucket when the raw
    catalogue (latest load per tenant) knows them, and popularity in kept events and sessions. -#}
with kept as (
    select tenant, session_id, sku
    from {{ ref('int_events__sessionized') }}
    where session_reject_reason is null and is_kept = 1
),

popularity as (
    select
        tenant,
        sku,
        count(*) as n_events,
        count(distinct session_id) as n_sessions
    from kept
    group by tenant, sku
),

latest_load as (
    select tenant, etl_id
    from (
        select
            tenant,
            etl_id,
            row_number() over (partition by tenant order by etl_timestamp desc, etl_id desc) as load_rank
        from {{ source('recframe_raw', 'loads') }}
    ) as ranked
    where load_rank = 1
),

catalogue as (
    select
        i.tenant,
        lower(trim(i.sku)) as sku,
        max(nullif(trim(i.category), '')) as category,
        max(nullif(trim(i.price_bucket), '')) as price_bucket
    from {{ source('recframe_raw', 'items') }} as i
    inner join latest_load as l
        on i.tenant = l.tenant and i.etl_id = l.etl_id
    group by i.tenant, lower(trim(i.sku))
)

select
    p.tenant || '/' || p.sku as item_uid,
    p.tenant,
    p.sku,
    c.category,
    c.price_bucket,
    p.n_events,
    p.n_sessions
from popularity as p
left join catalogue as c
    on p.tenant = c.tenant and p.sku = c.sku
