{{ config(materialized="table") }}
{#- The load each tenant is built from: its latest (by etl_timestamp), restricted to var('tenant')
    when set. Every model reads raw rows through this, which is what makes re-ingesting idempotent. -#}
select tenant, etl_id, etl_timestamp
from (
    select
        tenant,
        etl_id,
        etl_timestamp,
        row_number() over (partition by tenant order by etl_timestamp desc, etl_id desc) as load_rank
    from {{ source('recframe_raw', 'loads') }}
    {% if var('tenant') %}where tenant = '{{ var("tenant") }}'{% endif %}
) as ranked
where load_rank = 1
