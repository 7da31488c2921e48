-- depends_on: {{ ref('int_build_cutoffs') }}
-- depends_on: {{ ref('int_item_counts_replaced') }}
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='tenant', on_schema_change='sync_all_columns') }}
{#- The item catalogue: every SKU of an accepted session, with its key (int_item_keys), category and
    price bucket when the raw catalogue (latest load per tenant) knows them, its popularity (kept
    events) and the load it was counted in (`etl_id`). Popularity is read from the session lists (a
    dispatched macro: by key on DuckDB), not from the event level.

    Each build replaces the rows of its tenants (delete+insert by tenant). An incremental build
    (in place) whose items rows were counted from the load its kept sessions were last built from
    (items_can_update()) updates the counts instead of recounting every session: its rows, plus the
    rebuilt sessions' counts, less those of the sessions they replaced (int_item_counts_replaced,
    counted before int_sessions deleted them); an item whose count falls to 0 is dropped, as a
    recount would never list it. Otherwise every accepted session of the tenant is counted. -#}
{%- set cuts = built_cutoffs() if is_incremental() else {} %}
{%- set by = item_count_key() %}
with popularity as (
    {%- if items_can_update(cuts) %}
    {%- set rebuilt -%}
        (select * from {{ ref('int_sessions') }}
         where reject_reason is null and {{ after_cutoff(cuts, 'tenant', 'first_ms') }})
    {%- endset %}
    {%- set counts -%}
        select tenant, {{ by }}, cast(sum(n_events) as bigint) as n_events
        from (
            select tenant, {{ by }}, n_events from {{ this }}
            where tenant in (select tenant from {{ ref('stg_events__current_loads') }})
            union all
            {{ item_counts(rebuilt) }}
            union all
            select tenant, {{ by }}, -n_events from {{ ref('int_item_counts_replaced') }}
        ) as parts
        group by tenant, {{ by }}
        having sum(n_events) > 0
    {%- endset %}
    {{ item_popularity(counts, ref('int_item_keys')) }}
    {%- else %}
    {%- set in_scope -%}
        (select * from {{ ref('int_sessions') }} where reject_reason is null
         and tenant in (select tenant from {{ ref('stg_events__current_loads') }}))
    {%- endset %}
    {{ item_popularity(item_counts(in_scope), ref('int_item_keys')) }}
    {%- endif %}
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
    l.etl_id,
    p.sku,
    p.item_key,
    c.category,
    c.price_bucket,
    p.n_events
from popularity as p
inner join {{ ref('stg_events__current_loads') }} as l
    on p.tenant = l.tenant
left join catalogue as c
    on p.tenant = c.tenant and p.sku = c.sku
