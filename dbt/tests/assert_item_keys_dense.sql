{#- Each tenant's item keys are exactly 1..n, one per SKU, and each stored value has one row:
    session_sequences maps a key back to its SKU by position in the tenant's key-ordered SKU list, so
    a gap or a shared key would shift or merge SKUs. -#}
select tenant, 'keys are not 1..n, one per SKU' as problem
from {{ ref('int_item_keys') }}
group by tenant
having count(distinct item_key) <> max(item_key)
    or min(item_key) <> 1
    or count(distinct sku) <> count(distinct item_key)
    or count(distinct sku_raw) <> count(*)

union all

select tenant, 'a key names several SKUs' as problem
from {{ ref('int_item_keys') }}
group by tenant, item_key
having count(distinct sku) > 1
