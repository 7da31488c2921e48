{#- The events of the current build, renamed onto recframe's canonical columns and cast; nothing is
    filtered, mapped or rejected here (int_events__checked does that). One source, two layouts:

    - var('raw_mode') = 'ingest': recframe's append-only raw table (already canonical), restricted to
      each tenant's latest load;
    - var('raw_mode') = 'in_place': a table, view or Parquet lake recframe does not own, read where it
      is through the vars source_database / source_schema / source_table; var('source_columns') maps
      each canonical column to a source column, var('source_ts_unit') says how its timestamps are
      written, var('tenant') (or the mapped `tenant` column) scopes it.

    `ts_source` is the timestamp column as the source stores it (ingest: ts_ms): an incremental
    build filters on it so that the warehouse skips the old rows where they are stored.

    A view: it is a projection of the source, read once for the accepted rows and once for quarantine. -#}
{%- set cols = var('source_columns', {}) or {} -%}

{%- if var('raw_mode', 'ingest') == 'in_place' %}
{%- set text = {} -%}
{%- for c in ['session_key', 'user_key', 'event_type', 'product_action', 'sku', 'ts_raw', 'url'] -%}
  {%- do text.update({c: ('cast(' ~ adapter.quote(cols[c]) ~ ' as varchar)') if cols.get(c) else 'cast(null as varchar)'}) -%}
{%- endfor %}

with source as (
    select
        {% if cols.get('tenant') -%}
        cast({{ adapter.quote(cols['tenant']) }} as varchar)
        {%- else -%}
        '{{ var("tenant") | replace("'", "''") }}'
        {%- endif %} as tenant,
        {{ text['session_key'] }} as session_key,
        {{ text['user_key'] }} as user_key,
        {{ text['event_type'] }} as event_type,
        {{ text['product_action'] }} as product_action,
        {{ text['sku'] }} as sku,
        {{ text['ts_raw'] }} as ts_raw,
        {{ text['url'] }} as url,
        {{ adapter.quote(cols['ts_raw']) if cols.get('ts_raw') else 'cast(null as bigint)' }} as ts_source
    from {{ source('recframe_events', 'events') }}
    {%- if cols.get('tenant') and var('tenant') %}
    where cast({{ adapter.quote(cols['tenant']) }} as varchar) = '{{ var("tenant") | replace("'", "''") }}'
    {%- endif %}
)

select
    s.tenant,
    l.etl_id,
    cast({{ env_var('RECFRAME_LOAD_EPOCH_MS', var('load_epoch_ms', 0)) | int }} as bigint) as etl_epoch_ms,
    s.session_key,
    s.user_key,
    s.event_type,
    s.product_action,
    s.sku,
    s.ts_raw,
    {{ ts_ms_from_text('s.ts_raw', var('source_ts_unit', 'ms')) }} as ts_ms,
    s.url,
    s.ts_source
from source as s
inner join {{ ref('stg_events__current_loads') }} as l
    on s.tenant = l.tenant
{%- else %}

select
    e.tenant,
    e.etl_id,
    e.etl_epoch_ms,
    e.session_key,
    e.user_key,
    e.event_type,
    e.product_action,
    e.sku,
    e.ts_raw,
    e.ts_ms,
    e.url,
    e.ts_ms as ts_source
from {{ source('recframe_events', 'events') }} as e
inner join {{ ref('stg_events__current_loads') }} as l
    on e.tenant = l.tenant and e.etl_id = l.etl_id
{%- endif %}
