{{ config(materialized="table") }}
{#- The load each tenant is built from. Ingest: its latest (by etl_timestamp) in recframe's raw
    loads table, restricted to var('tenant') when set; every model reads raw rows through this, which
    is what makes re-ingesting idempotent. In place: the one tenant of var('tenant'), under the
    load id recframe derived from the source's fingerprint (nothing is written to the raw tables).
    The load id and the load time change with every build of a growing source, so they come from
    the environment (RECFRAME_ETL_ID, RECFRAME_LOAD_EPOCH_MS; the vars etl_id and load_epoch_ms when
    unset): dbt then re-parses only the files reading them, where a changed var makes it re-parse
    the whole project. -#}
{%- if var('raw_mode', 'ingest') == 'in_place' %}
select
    cast('{{ var("tenant") | replace("'", "''") }}' as varchar) as tenant,
    cast('{{ env_var("RECFRAME_ETL_ID", var("etl_id", "in_place")) | replace("'", "''") }}' as varchar) as etl_id,
    {{ epoch_ms_to_timestamp(env_var("RECFRAME_LOAD_EPOCH_MS", var("load_epoch_ms", 0)) | int) }} as etl_timestamp
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
