-- depends_on: {{ ref('int_build_cutoffs') }}
{{ config(
    materialized='incremental', incremental_strategy='append', on_schema_change='sync_all_columns',
    pre_hook="{{ delete_rebuilt_quarantine(built_cutoffs()) }}",
    tmp_relation_type='table',
) }}
{#- tmp_relation_type (dbt-snowflake): the new rows are staged in a table, not a temporary view, so
    that the statement is the one macros/snowflake_compat.sql adapts where temporary ones are refused. -#}
{#- Every raw row of the current loads that did not reach a session, with the reason. `n_rows` is how
    many raw rows a quarantine row stands for (1 for a row-level reject; for duplicate, the extra
    copies of exact duplicates in one session; for a rejected session, its distinct events), so that
    rows in = accepted + sum(n_rows). `event_ms` is the row's event time (a session's first event for
    session-level rows). Incremental like int_sessions: row-level rejects do not depend on their
    neighbours, so a build deletes (pre-hook) and re-inserts only the rejects from each tenant's
    cutoff on (and those without a timestamp, unless none was appended: untimed_kept()), and the
    session-level rows of the sessions it rebuilt. -#}
{%- set cuts = built_cutoffs() %}
with row_rejects as (
    -- the stored SKU, normalised below: staging's normalised `sku` would be computed for every
    -- event before the filter (DuckDB evaluates a view's columns before filtering on one of them),
    -- ~0.6 of this model's 3.3 CPU s at 10M events, most of which are not rejected
    select
        tenant,
        etl_id,
        reject_reason as reason,
        coalesce(session_key, user_key) as session_key,
        sku_raw,
        event_type_raw,
        product_action_raw,
        ts_raw,
        ts_ms
    from {{ ref('int_events__checked') }}
    where reject_reason is not null and {{ staged_after_cutoff(cuts, or_null=not untimed_kept(cuts)) }}
)

select
    tenant,
    etl_id,
    reason,
    session_key,
    {{ normalized_sku('sku_raw') }} as sku,
    event_type_raw,
    product_action_raw,
    ts_raw,
    ts_ms as event_ms,
    1 as n_rows
from row_rejects

{%- if var('raw_mode', 'ingest') == 'ingest' %}

union all

select
    r.tenant,
    r.etl_id,
    case when upper(r.error_type) like '%ENCODING%' then 'invalid_encoding' else 'malformed_row' end as reason,
    null as session_key,
    null as sku,
    null as event_type_raw,
    null as product_action_raw,
    r.raw_line as ts_raw,
    cast(null as bigint) as event_ms,
    1 as n_rows
from {{ source('recframe_raw', 'rejects') }} as r
inner join {{ ref('stg_events__current_loads') }} as l
    on r.tenant = l.tenant and r.etl_id = l.etl_id

{%- endif %}

union all

select
    s.tenant,
    s.etl_id,
    'duplicate' as reason,
    s.session_id as session_key,
    null as sku,
    null as event_type_raw,
    null as product_action_raw,
    null as ts_raw,
    s.first_ms as event_ms,
    s.n_duplicates as n_rows
from {{ ref('int_sessions') }} as s
inner join {{ ref('stg_events__current_loads') }} as l
    on s.tenant = l.tenant
where s.n_duplicates > 0 and {{ after_cutoff(cuts, 's.tenant', 's.first_ms') }}

union all

select
    s.tenant,
    s.etl_id,
    s.reject_reason as reason,
    s.session_id as session_key,
    null as sku,
    null as event_type_raw,
    null as product_action_raw,
    null as ts_raw,
    s.first_ms as event_ms,
    s.n_events as n_rows
from {{ ref('int_sessions') }} as s
inner join {{ ref('stg_events__current_loads') }} as l
    on s.tenant = l.tenant
where s.reject_reason is not null and {{ after_cutoff(cuts, 's.tenant', 's.first_ms') }}
