{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='tenant', on_schema_change='sync_all_columns') }}
{#- The item catalogue: every SKU of an accepted session, with its key (int_item_keys), category and
    price bucket when the raw catalogue (latest load per tenant) knows them, and its popularity (kept
    events), summed over int_item_days (counted from the session lists, by key on DuckDB; only the
    days an incremental build touched are counted again there), not from the event level. -#}
with popularity as (
    {%- set in_scope -%}
        (select * from {{ ref('int_item_days') }}
         where tenant in (select tenant from {{ ref('stg_events__current_loads') }}))
    {%- endset %}
    {{ item_popularity(in_scope, ref('int_item_keys')) }}
),

catalogue as (
    {%- if var('raw_mode', 'ingest') == 'in_place' %}
    -- in place there is no raw catalogue: category and price bucket stay null
    select
        cast(null as varchar) as tenant,
        cast(null as varchar) as sku,
        cast(null as varchar) as category,
        cast(null as varchar) as price_bucket
    where false
    {%- else %}
    select
        i.tenant,
        lower(trim(i.sku)) as sku,
        max(nullif(trim(i.category), '')) as category,
        max(nullif(trim(i.price_bucket), '')) as price_bucket
    from {{ source('recframe_raw', 'items') }} as i
    inner join {{ ref('stg_events__current_loads') }} as l
        on i.tenant = l.tenant and i.etl_id = l.etl_id
    group by i.tenant, lower(trim(i.sku))
    {%- endif %}
)

select
    p.tenant || '/' || p.sku as item_uid,
    p.tenant,
    p.sku,
    p.item_key,
    c.category,
    c.price_bucket,
    p.n_events
from popularity as p
left join catalogue as c
    on p.tenant = c.tenant and p.sku = c.sku
