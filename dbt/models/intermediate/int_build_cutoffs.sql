{{ config(materialized='table') }}
{#- The cutoff of each tenant this build continues incrementally (macros/incremental_sessions.sql),
    computed from int_sessions as it stood before this build: int_sessions depends on this model, so
    it is written before int_sessions' pre-hook deletes. Every other model reads its cutoffs here
    (built_cutoffs()), once each, instead of computing them again; empty when everything is rebuilt. -#}
{%- set cuts = session_cutoffs() %}
{%- if cuts %}
{%- for t, c in cuts.items() %}
select cast('{{ t | replace("'", "''") }}' as varchar) as tenant, cast({{ c }} as bigint) as cut_ms
{%- if not loop.last %}
union all
{%- endif %}
{%- endfor %}
{%- else %}
select cast(null as varchar) as tenant, cast(null as bigint) as cut_ms
where 1 = 0
{%- endif %}
