-- depends_on: {{ ref('stg_events__raw_events') }}
-- depends_on: {{ ref('stg_events__current_loads') }}
{#- Every input row of the current loads (stored, or rejected by the reader; in place: every source
    row in scope) is either accepted (a distinct event of an accepted session) or quarantined: rows in = accepted + quarantined, per tenant.
    In place the rows in are counted in the source itself, not through staging: a row staging lost
    would fail here too, and a count of a Parquet lake is read from its files' metadata. -#}
{%- set cols = var('source_columns', {}) or {} %}
with raw_rows as (
    {%- if var('raw_mode', 'ingest') == 'in_place' %}
    select cast('{{ var("tenant") | replace("'", "''") }}' as varchar) as tenant, count(*) as n
    from {{ source('recframe_events', 'events') }}
    {%- if cols.get('tenant') %}
    where cast({{ adapter.quote(cols['tenant']) }} as varchar) = '{{ var("tenant") | replace("'", "''") }}'
    {%- endif %}
    {%- else %}
    select tenant, count(*) as n
    from (
        select tenant from {{ ref('stg_events__raw_events') }}
        union all
        select r.tenant
        from {{ source('recframe_raw', 'rejects') }} as r
        inner join {{ ref('stg_events__current_loads') }} as l
            on r.tenant = l.tenant and r.etl_id = l.etl_id
    ) as rows_in
    group by tenant
    {%- endif %}
),

accepted as (
    select tenant, sum(n_events) as n
    from {{ ref('int_sessions') }}
    where reject_reason is null
    group by tenant
),

quarantined as (
    select tenant, sum(n_rows) as n
    from {{ ref('quarantine') }}
    group by tenant
)

select r.tenant, r.n as raw_rows, coalesce(a.n, 0) as accepted, coalesce(q.n, 0) as quarantined
from raw_rows as r
left join accepted as a on r.tenant = a.tenant
left join quarantined as q on r.tenant = q.tenant
where r.n <> coalesce(a.n, 0) + coalesce(q.n, 0)
