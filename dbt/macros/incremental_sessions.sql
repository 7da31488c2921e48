{#- Incremental session builds (in-place sources).

    A source read in place grows by appends (a loader adds each day's events). A re-build then
    re-reads only the tail: per tenant, the sessions that a new event could still extend are those
    whose last event is within one session gap (var('session_gap_minutes')) of the last built event;
    the cutoff is the first event of the earliest of them. Sessions starting at or after the cutoff
    are deleted (int_sessions' pre-hook) and rebuilt whole from the events at or after it; the
    sessions before it are kept as built. So a session spanning the boundary is rebuilt whole, and
    an incremental build gives exactly the sessions of a full one as long as new events are later
    than the last built event minus one gap.

    A tenant is rebuilt in full when its sessions were built from another source or with other
    settings (var('build_source'), a hash recframe computes over the source and the vars that shape
    sessions), in ingest mode (each load is a complete file), and with --full-refresh. -#}

{#- int_sessions as it stands before this build (looked up, not ref()'d: the per-event models that
    read it are upstream of it), or none when it does not exist yet. -#}
{% macro built_sessions_relation() -%}
  {%- if not execute -%}{{ return(none) }}{%- endif -%}
  {{ return(adapter.get_relation(database=target.database, schema=target.schema, identifier='int_sessions')) }}
{%- endmacro %}


{#- One row (tenant, cut_ms, built_etl_id) per tenant whose build is incremental; [] when everything
    is rebuilt. `built_etl_id` is the load the tenant's sessions were last built from: that of its
    session ending last, which every build rebuilds (items checks it before updating its counts).
    Computed once per build, by int_build_cutoffs (before int_sessions' pre-hook deletes); every
    other model reads that table (built_cutoffs()), a lookup instead of a scan of int_sessions. -#}
{% macro session_cutoff_rows() -%}
  {%- if not execute or flags.FULL_REFRESH or var('raw_mode', 'ingest') != 'in_place' -%}{{ return([]) }}{%- endif -%}
  {%- set rel = built_sessions_relation() -%}
  {%- if rel is none -%}{{ return([]) }}{%- endif -%}
  {%- set names = adapter.get_columns_in_relation(rel) | map(attribute='name') | map('lower') | list -%}
  {%- if 'build_source' not in names -%}{{ return([]) }}{%- endif -%}
  {%- set gap_ms = (var('session_gap_minutes') | float * 60000) | int -%}
  {%- set source_id = var('build_source', 'ingest') | replace("'", "''") -%}
  {#- the tenants built from this source alone, with their last built event... -#}
  {%- set ends_sql -%}
    select tenant, max(last_ms) as t_end
    from {{ rel }}
    group by tenant
    -- every session built from this source (a count of the others, not min/max over the text:
    -- a third of the time); a session without one, from before the column, counts as another's
    having sum(case when build_source = '{{ source_id }}' then 0 else 1 end) = 0
        and count(*) = count(last_ms)
  {%- endset -%}
  {%- set rows = [] -%}
  {%- for end in run_query(ends_sql) -%}
    {#- ...then each one's cutoff, from the sessions ending within a gap of it: a constant bound the
        scan applies, instead of a join of every session with its tenant's end -#}
    {%- set t = end[0] | replace("'", "''") -%}
    {%- set cut_sql -%}
      select min(first_ms), max(case when last_ms = {{ end[1] | int }} then etl_id end)
      from {{ rel }}
      where tenant = '{{ t }}' and last_ms >= {{ end[1] | int - gap_ms }}
    {%- endset -%}
    {%- set cut = run_query(cut_sql).rows[0] -%}
    {%- do rows.append({'tenant': end[0], 'cut_ms': cut[0] | int, 'built_etl_id': cut[1],
                        'untimed_kept': untimed_rows_unchanged(end[0])}) -%}
  {%- endfor -%}
  {{ return(rows) }}
{%- endmacro %}


{#- True when the source's rows without a timestamp are the ones quarantine already holds for
    `tenant` (as many rows without a time in both): no row without one was appended since the last
    build, so this build keeps their quarantine rows instead of deleting and re-inserting them all
    (they cannot be placed before or after a cutoff). Only where the source's timestamp column is
    an epoch number (source_tail_filter()): its rows without one are then exactly quarantine's rows
    without an event time, and the count comes from the files' statistics, not a scan. Appends only,
    as every incremental build assumes; a full refresh rebuilds them. -#}
{% macro untimed_rows_unchanged(tenant) -%}
  {%- set cols = var('source_columns', {}) or {} -%}
  {%- if tenant != var('tenant', none) or not source_ts_is_numeric() -%}{{ return(false) }}{%- endif -%}
  {%- set rel = adapter.get_relation(database=target.database, schema=target.schema, identifier='quarantine') -%}
  {%- if rel is none -%}{{ return(false) }}{%- endif -%}
  {%- set t = tenant | replace("'", "''") -%}
  {%- set sql -%}
    select
        (select count(*) from {{ source('recframe_events', 'events') }}
         where {{ adapter.quote(cols['ts_raw']) }} is null
         {%- if cols.get('tenant') %} and cast({{ adapter.quote(cols['tenant']) }} as varchar) = '{{ t }}'{% endif %}),
        (select count(*) from {{ rel }} where tenant = '{{ t }}' and event_ms is null)
  {%- endset -%}
  {%- set row = run_query(sql).rows[0] -%}
  {{ return(row[0] == row[1]) }}
{%- endmacro %}


{#- True when this build keeps the quarantine rows of its tenant's rows without a timestamp
    (int_build_cutoffs.untimed_kept, computed before anything is written). -#}
{% macro untimed_kept(cuts) -%}
  {%- set tenant = var('tenant', none) -%}
  {%- if not execute or not cuts or tenant not in cuts -%}{{ return(false) }}{%- endif -%}
  {%- set sql -%}
    select untimed_kept from {{ ref('int_build_cutoffs') }} where tenant = '{{ tenant | replace("'", "''") }}'
  {%- endset -%}
  {%- set rows = run_query(sql).rows -%}
  {{ return(rows | length == 1 and rows[0][0] == true) }}
{%- endmacro %}


{#- A SQL condition on `tenant_col`/`ts_col`: the rows an incremental build re-reads. In place (one
    tenant per build, var('tenant')) that is `tenant = 't' and ts >= cutoff`: a plain comparison on a
    column, which the warehouse applies while it scans (DuckDB reads the other columns only where it
    holds: the tests and lookups of an incremental build read their few rows instead of every
    session's lists). Rows of other tenants fail it; every model reads the build's tenant's rows
    only, and the data tests check the rows this build wrote. With several cutoffs (a build run by
    hand) a CASE per tenant, true for the tenants rebuilt in full. `or_null`: rows where `ts_col` is
    null pass too. -#}
{% macro after_cutoff(cuts, tenant_col='tenant', ts_col='ts_ms', or_null=false) -%}
  {%- set tenant = var('tenant', none) -%}
  {%- if cuts and cuts | length == 1 and tenant in cuts and var('raw_mode', 'ingest') == 'in_place' -%}
  ({{ tenant_col }} = '{{ tenant | replace("'", "''") }}' and {% if or_null %}({{ ts_col }} >= {{ cuts[tenant] }} or {{ ts_col }} is null){% else %}{{ ts_col }} >= {{ cuts[tenant] }}{% endif %})
  {%- elif cuts -%}
  {% if or_null %}coalesce({% endif %}case {{ tenant_col }}
    {%- for t, c in cuts.items() %} when '{{ t | replace("'", "''") }}' then {{ ts_col }} >= {{ c }}{% endfor %}
    else true end{% if or_null %}, true){% endif %}
  {%- else -%}
  true
  {%- endif -%}
{%- endmacro %}


{#- int_sessions' pre-hook: delete the sessions this build rebuilds (all of a tenant's in scope, or
    those starting at or after its cutoff). Empty when the table is created from scratch. -#}
{% macro delete_rebuilt_sessions(cuts) -%}
  {%- if is_incremental() -%}
  delete from {{ this }}
  where tenant in (select tenant from {{ ref('stg_events__current_loads') }})
    and ({{ after_cutoff(cuts, 'tenant', 'first_ms') }})
  {%- endif -%}
{%- endmacro %}


{#- int_item_keys' pre-hook: delete the keys of the tenants rebuilt in full (an incremental tenant
    keeps its keys and only adds the SKUs it had not seen). -#}
{% macro delete_rebuilt_item_keys(cuts) -%}
  {%- if is_incremental() -%}
  delete from {{ this }}
  where tenant in (select tenant from {{ ref('stg_events__current_loads') }})
  {%- if cuts %}
    and tenant not in ({% for t in cuts %}'{{ t | replace("'", "''") }}'{% if not loop.last %}, {% endif %}{% endfor %})
  {%- endif %}
  {%- endif -%}
{%- endmacro %}


{#- tenant -> cutoff as int_build_cutoffs recorded it for this build, for every model after it (those
    that run after int_sessions could not compute it again: its table then no longer shows the
    cutoff). A model calling this declares `-- depends_on: {{ ref('int_build_cutoffs') }}`. {} when
    everything is rebuilt. -#}
{% macro built_cutoffs() -%}
  {%- if not execute or flags.FULL_REFRESH or var('raw_mode', 'ingest') != 'in_place' -%}{{ return({}) }}{%- endif -%}
  {%- set cuts = {} -%}
  {%- for row in run_query('select tenant, cut_ms from ' ~ ref('int_build_cutoffs')) -%}
    {%- do cuts.update({row[0]: row[1] | int}) -%}
  {%- endfor -%}
  {{ return(cuts) }}
{%- endmacro %}


{#- The in-place source's timestamp column (`ts_raw` of var('source_columns')), as the warehouse
    describes it, or none (not in place, or no such column). -#}
{% macro source_ts_column() -%}
  {%- set cols = var('source_columns', {}) or {} -%}
  {%- if not execute or var('raw_mode', 'ingest') != 'in_place' or not cols.get('ts_raw') -%}{{ return(none) }}{%- endif -%}
  {%- for c in adapter.get_columns_in_relation(source('recframe_events', 'events')) -%}
    {%- if c.name | lower == cols['ts_raw'] | lower -%}{{ return(c) }}{%- endif -%}
  {%- endfor -%}
  {{ return(none) }}
{%- endmacro %}


{#- True when the source's timestamp column holds integers in epoch ms: staging's `ts_ms` is then
    that integer itself (parsed from its text, exact below 2^53), null exactly where it is null. -#}
{% macro source_ts_is_integer_ms() -%}
  {%- set c = source_ts_column() if var('source_ts_unit', 'ms') == 'ms' else none -%}
  {{ return(c is not none and c.is_integer()) }}
{%- endmacro %}


{#- after_cutoff() on staged rows (staging, int_events__checked): by `ts_source`, the column as stored,
    when it is an integer in ms (the same rows as by `ts_ms`, without parsing each row's text again,
    and a comparison the Parquet reader applies while it reads), else by `ts_ms`. `or_null`: rows
    without a timestamp pass too. -#}
{% macro staged_after_cutoff(cuts, or_null=false) -%}
  {%- if not cuts -%}true{%- else -%}
  {{ after_cutoff(cuts, 'tenant', 'ts_source' if source_ts_is_integer_ms() else 'ts_ms', or_null=or_null) }}
  {%- endif -%}
{%- endmacro %}


{#- A SQL condition on staging's `ts_source` (the source's timestamp column as stored) that keeps at
    least the rows at or after the build's tenant's cutoff, and lets the warehouse skip the rest where
    it is stored (Parquet row groups, micro-partitions) instead of parsing every timestamp: only for
    a numeric column in ms or s, when the build's one tenant is incremental; else true. Consumers
    still apply the exact per-tenant cutoff (staged_after_cutoff). -#}
{% macro source_tail_filter(cuts) -%}
  {%- set tenant = var('tenant', none) -%}
  {%- set unit = var('source_ts_unit', 'ms') -%}
  {%- if not cuts or tenant not in cuts or not source_ts_is_numeric() -%}true
  {%- else -%}
    (ts_source is null or ts_source >= {{ cuts[tenant] if unit == 'ms' else (cuts[tenant] // 1000 - 1) }})
  {%- endif -%}
{%- endmacro %}


{#- True when the in-place source's timestamp column is stored as an epoch number (ms or s), whose
    statistics a scan can filter by. -#}
{% macro source_ts_is_numeric() -%}
  {%- set c = source_ts_column() if var('source_ts_unit', 'ms') in ('ms', 's') else none -%}
  {{ return(c is not none and (c.is_integer() or c.is_float() or c.is_numeric())) }}
{%- endmacro %}


{#- quarantine's pre-hook: delete the rows this build re-inserts: all of a tenant's in scope, or
    those from its cutoff on (row rejects at or after it, and those without a timestamp unless
    untimed_kept(); the duplicates and session rejects of the sessions starting at or after it,
    which int_sessions rebuilt). -#}
{% macro delete_rebuilt_quarantine(cuts) -%}
  {%- if is_incremental() -%}
  delete from {{ this }}
  where tenant in (select tenant from {{ ref('stg_events__current_loads') }})
  {%- if cuts and untimed_kept(cuts) %}
    and {{ after_cutoff(cuts, 'tenant', 'event_ms') }}
  {%- elif cuts %}
    and (event_ms is null or {{ after_cutoff(cuts, 'tenant', 'event_ms') }})
  {%- endif %}
  {%- endif -%}
{%- endmacro %}


{#- True when `items` can update its counts in this build instead of recounting every session: the
    build is incremental for its one tenant (in place), and each of that tenant's items rows was built
    from the load the kept sessions were last built from (int_build_cutoffs.built_etl_id). A build
    that stopped after int_sessions and before items leaves items a load behind: the next one then
    recounts. int_item_counts_replaced and items both ask, before items is written. -#}
{% macro items_can_update(cuts) -%}
  {%- set tenant = var('tenant', none) -%}
  {%- if not execute or not cuts or cuts | length != 1 or tenant not in cuts
        or var('raw_mode', 'ingest') != 'in_place' -%}{{ return(false) }}{%- endif -%}
  {%- set rel = adapter.get_relation(database=target.database, schema=target.schema, identifier='items') -%}
  {%- if rel is none -%}{{ return(false) }}{%- endif -%}
  {%- set names = adapter.get_columns_in_relation(rel) | map(attribute='name') | map('lower') | list -%}
  {%- if 'etl_id' not in names -%}{{ return(false) }}{%- endif -%}
  {%- set t = tenant | replace("'", "''") -%}
  {%- set sql -%}
    select count(*), count(case when i.etl_id = c.built_etl_id then 1 end)
    from {{ rel }} as i
    cross join (select built_etl_id from {{ ref('int_build_cutoffs') }} where tenant = '{{ t }}') as c
    where i.tenant = '{{ t }}'
  {%- endset -%}
  {%- set row = run_query(sql).rows[0] -%}
  {{ return(row[0] > 0 and row[0] == row[1]) }}
{%- endmacro %}


{#- int_sessions' first pre-hook: on DuckDB an incremental build's statements keep the insertion
    order (a session setting: this model's connection only), so that the time order its new
    sessions are selected in (int_sessions.sql) reaches the table. The profile turns that order off
    for the big CREATE TABLE AS of a full build (it lets DuckDB stream and spill), and without it
    the ORDER BY of the new rows is dropped. -#}
{% macro ordered_append() -%}
  {{ return(adapter.dispatch('ordered_append', 'recframe')()) }}
{%- endmacro %}

{% macro default__ordered_append() -%}
{%- endmacro %}

{% macro duckdb__ordered_append() -%}
  {%- if is_incremental() -%}set session preserve_insertion_order = true{%- endif -%}
{%- endmacro %}
