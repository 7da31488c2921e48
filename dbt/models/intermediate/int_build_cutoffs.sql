{{ config(materialized='table') }}
{#- The cutoff of each tenant this build continues incrementally (macros/incremental_sessions.sql),
    computed from int_sessions as it stood before this build: int_sessions depends on this model, so
    it is written before int_sessions' pre-hook deletes. Every other model reads its cutoffs here
    (built_cutoffs()), once each, instead of computing them again; empty when everything is rebuilt.
    `built_etl_id`: the load the kept sessions were last built from (items updates its counts only
    when it was built from that same load); `untimed_kept`: quarantine keeps its rows of the
    source's rows without a timestamp (none was appended since). -#}
{%- set rows = session_cutoff_rows() %}
{%- if rows %}
{%- for r in rows %}
select
    cast('{{ r.tenant | replace("'", "''") }}' as varchar) as tenant,
    cast({{ r.cut_ms }} as bigint) as cut_ms,
    cast({% if r.built_etl_id is none %}null{% else %}'{{ r.built_etl_id | replace("'", "''") }}'{% endif %} as varchar) as built_etl_id,
    {{ 'true' if r.untimed_kept else 'false' }} as untimed_kept
{%- if not loop.last %}
union all
{%- endif %}
{%- endfor %}
{%- else %}
select cast(null as varchar) as tenant, cast(null as bigint) as cut_ms, cast(null as varchar) as built_etl_id,
    cast(null as boolean) as untimed_kept
where 1 = 0
{%- endif %}
