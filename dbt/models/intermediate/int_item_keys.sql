{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='tenant') }}
{#- One integer key per distinct SKU of each tenant's current load, numbered 1..n in SKU order. The
    DuckDB roll-up (macros/session_lists.sql) aggregates, sorts and stores these keys instead of
    64-character strings, and session_sequences maps them back; because keys follow SKU order,
    ordering by key orders exactly as by SKU, so both dialects produce the same sequences. Distinct
    raw values first, normalised after: one pass over the load hashes the stored values, and the
    string functions then run once per distinct value. Every raw SKU gets a key, rejected rows'
    too: a key without a session costs nothing. -#}
with raw_skus as (
    select distinct e.tenant, e.sku
    from {{ source('recframe_raw', 'events') }} as e
    inner join {{ ref('stg_events__current_loads') }} as l
        on e.tenant = l.tenant and e.etl_id = l.etl_id
),

normalized as (
    select distinct tenant, {{ normalized_sku('sku') }} as sku
    from raw_skus
)

select
    tenant,
    sku,
    cast(row_number() over (partition by tenant order by sku) as integer) as item_key
from normalized
where sku is not null
