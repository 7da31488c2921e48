{#- Each tenant's item keys are exactly 1..n, one per SKU: session_sequences maps a key back to its
    SKU by position in the tenant's key-ordered SKU list, so a gap or a repeat would shift SKUs. -#}
select tenant, count(*) as n_keys
from {{ ref('int_item_keys') }}
group by tenant
having count(*) <> max(item_key)
    or min(item_key) <> 1
    or count(distinct item_key) <> count(*)
    or count(distinct sku) <> count(*)
