{{ config(materialized="table") }}
{#- The load each tenant is built from. Ingest: its latest (by etl_timestamp) in recframe's raw
    loads table, restricted to var('tenant') when set; every model reads raw rows through this, which
    is what makes re-ingesting idempotent. In place: the one tenant of var('tenant'), under the
    var('etl_id') recframe derived from the source's fingerprint (nothing is written to the raw
    tables). -#}
{%- if var('raw_mode', 'ingest') == 'in_place' %}
select
    cast('{{ var("tenant") | replace("'", "''") }}' as varchar) as tenant,
    cast('{{ var("etl_id", "in_place") | replace("'", "''") }}' as varchar) as etl_id,
    {{ epoch_ms_to_timestamp(var('load_epoch_ms', 0) | int) }} as etl_timestamp
{%- else %}
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
{%- endif %}
