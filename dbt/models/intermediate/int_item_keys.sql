-- depends_on: {{ ref('int_build_cutoffs') }}
-- depends_on: {{ ref('stg_events__current_loads') }}
{{ config(
    materialized='incremental', incremental_strategy='append', tmp_relation_type='table',
    pre_hook="{{ delete_rebuilt_item_keys(built_cutoffs()) }}",
) }}
{#- One row per distinct stored SKU value of each tenant's current load (`sku_raw`), with its
    normalised SKU and that SKU's integer key, numbered 1..n in SKU order (values that normalise to
    the same SKU share its key). The DuckDB roll-up (macros/session_lists.sql) looks keys up by the
    stored value, so the normalisation runs once per distinct value instead of once per event, and
    aggregates, sorts and stores keys instead of 64-character strings; session_sequences maps them
    back. Because keys follow SKU order, ordering by key orders exactly as by SKU, so both dialects
    produce the same sequences. Every raw value gets a row, rejected rows' too: it costs nothing.
    An incremental build (macros/incremental_sessions.sql) keeps a tenant's keys and numbers the SKUs
    it had not seen after them (in SKU order among themselves), so the sessions built before keep
    theirs; events with equal timestamps and actions then order by key, not SKU, until a full refresh.
    Appended: the pre-hook deleted the tenants rebuilt in full and the new rows are only stored values
    the table lacks, so no key lookup against the whole table is needed. -#}
{%- set cuts = built_cutoffs() if is_incremental() else {} %}
with raw_skus as (
    select distinct tenant, sku as sku_raw
    from {{ ref('stg_events__raw_events') }}
    where {{ staged_after_cutoff(cuts) }} and {{ source_tail_filter(cuts) }}
),

normalized as (
    select tenant, sku_raw, {{ normalized_sku('sku_raw') }} as sku
    from raw_skus
),

{%- if is_incremental() %}

-- the pre-hook left the incremental tenants' keys: keep them, number only unseen SKUs after them.
-- A null SKU is dropped after the joins (by its missing key), not before: a filter on `sku` there
-- is pushed into the source scan, which then lower-cases every event's SKU instead of every distinct
-- one (50M events, a day appended: 1.6 of this model's 1.7 CPU s)
known as (
    select tenant, sku_raw, sku, item_key from {{ this }}
),

fresh as (
    select n.tenant, n.sku_raw, n.sku
    from normalized as n
    left join known as k
        on n.tenant = k.tenant and n.sku_raw = k.sku_raw
    where k.tenant is null
),

known_skus as (
    select distinct tenant, sku, item_key from known
),

new_skus as (
    select f.tenant, f.sku
    from fresh as f
    left join known_skus as ks
        on f.tenant = ks.tenant and f.sku = ks.sku
    where ks.tenant is null and f.sku is not null
    group by f.tenant, f.sku
),

numbered as (
    select
        n.tenant,
        n.sku,
        cast(coalesce(m.max_key, 0) + dense_rank() over (partition by n.tenant order by n.sku) as integer) as item_key
    from new_skus as n
    left join (select tenant, max(item_key) as max_key from known group by tenant) as m
        on n.tenant = m.tenant
)

select f.tenant, f.sku_raw, f.sku, coalesce(ks.item_key, nb.item_key) as item_key
from fresh as f
left join known_skus as ks
    on f.tenant = ks.tenant and f.sku = ks.sku
left join numbered as nb
    on f.tenant = nb.tenant and f.sku = nb.sku
-- every non-null SKU has a key (a known one or a new one): only the null SKUs are dropped
where coalesce(ks.item_key, nb.item_key) is not null
{%- else %}

ranked as (
    -- null SKUs rank after all others, so the SKUs keep the ranks 1..n
    select
        tenant,
        sku_raw,
        sku,
        cast(dense_rank() over (partition by tenant order by sku nulls last) as integer) as item_key
    from normalized
)

-- filtered after the window on purpose: a filter on `sku` before it is pushed by DuckDB into the
-- raw scan, which then normalises every event's SKU instead of every distinct one (10M events:
-- 3.4 CPU s instead of 1.5)
select tenant, sku_raw, sku, item_key
from ranked
where sku is not null
{%- endif %}
