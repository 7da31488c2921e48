{#- Data tests scoped to the rows an incremental build wrote (macros/incremental_sessions.sql).

    A generic test (unique, not_null, accepted_values) reads its model through get_where_subquery,
    which applies the test's `where` config. recframe's yml files name two placeholders there:

    - `__rebuilt__(col)`: the rows this build wrote: its tenant's, from the cutoff on by `col` (rows
      where `col` is null too, so a not_null test on `col` itself still sees them). Rows kept from
      earlier builds were tested when they were written, and no later build changes them; a plain
      comparison, which the warehouse applies while it scans (after_cutoff());
    - `__rebuilt_keys__(key, col)`: every row whose `key` is also the key of such a row, old rows
      included, so that a unique test still catches a new row repeating a key built before.

    On a full build, a full refresh and in ingest mode (no cutoffs) both are true: the test reads the
    whole model. The cutoffs are int_build_cutoffs' (the current build's; after a plain `dbt test`,
    the last build's), looked up rather than ref()'d, since a generic test depends on its model only. -#}

{% macro get_where_subquery(relation) -%}
  {%- set where = config.get('where', '') -%}
  {%- if where and '__rebuilt' in where -%}
    {%- set where = rebuilt_rows_where(where, relation) -%}
  {%- endif -%}
  {%- if where and where | trim != 'true' -%}
    {%- set filtered -%}
      (select * from {{ relation }} where {{ where }}) dbt_subquery
    {%- endset -%}
    {{ return(filtered) }}
  {%- else -%}
    {{ return(relation) }}
  {%- endif -%}
{%- endmacro %}


{#- tenant -> cutoff of the build int_build_cutoffs records; {} when the build was a full one. -#}
{% macro test_cutoffs() -%}
  {%- if not execute or flags.FULL_REFRESH or var('raw_mode', 'ingest') != 'in_place' -%}{{ return({}) }}{%- endif -%}
  {%- set rel = adapter.get_relation(database=target.database, schema=target.schema, identifier='int_build_cutoffs') -%}
  {%- if rel is none -%}{{ return({}) }}{%- endif -%}
  {%- set cuts = {} -%}
  {%- for row in run_query('select tenant, cut_ms from ' ~ rel) -%}
    {%- do cuts.update({row[0]: row[1] | int}) -%}
  {%- endfor -%}
  {{ return(cuts) }}
{%- endmacro %}


{#- The `where` text with its placeholders replaced (see above). -#}
{% macro rebuilt_rows_where(where, relation) -%}
  {%- set cuts = test_cutoffs() -%}
  {%- set re = modules.re -%}
  {%- if not cuts -%}
    {%- set where = re.sub('__rebuilt_keys__\\(([^,()]+),([^()]+)\\)', 'true', where) -%}
    {{ return(re.sub('__rebuilt__\\(([^()]+)\\)', 'true', where)) }}
  {%- endif -%}
  {%- set out = [] -%}
  {%- for part in re.split('(__rebuilt_keys__\\([^()]*\\)|__rebuilt__\\([^()]*\\))', where) -%}
    {%- set keys = re.match('^__rebuilt_keys__\\(([^,()]+),([^()]+)\\)$', part) -%}
    {%- set rows = re.match('^__rebuilt__\\(([^()]+)\\)$', part) -%}
    {%- if keys -%}
      {%- set key, col = keys.group(1) | trim, keys.group(2) | trim -%}
      {%- do out.append(key ~ ' in (select ' ~ key ~ ' from ' ~ relation ~ ' where '
                        ~ after_cutoff(cuts, 'tenant', col, or_null=true) ~ ')') -%}
    {%- elif rows -%}
      {%- do out.append(after_cutoff(cuts, 'tenant', rows.group(1) | trim, or_null=true)) -%}
    {%- else -%}
      {%- do out.append(part) -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return(out | join('')) }}
{%- endmacro %}


{#- True when int_sessions' `key_hash` can stand for its key in this build's key test: every kept
    session has one, and those of a sample of them equal the hash the warehouse computes now (a
    DuckDB release that changed its hash function would otherwise hide a repeated key). -#}
{% macro session_key_hashes_hold(cuts) -%}
  {%- if not execute or not cuts -%}{{ return(false) }}{%- endif -%}
  {%- set rel = built_sessions_relation() -%}
  {%- if rel is none -%}{{ return(false) }}{%- endif -%}
  {%- set names = adapter.get_columns_in_relation(rel) | map(attribute='name') | map('lower') | list -%}
  {%- if 'key_hash' not in names -%}{{ return(false) }}{%- endif -%}
  {%- set sql -%}
    select
        (select count(*) from {{ rel }} where key_hash is null),
        (select count(*) from (select tenant, session_id, key_hash from {{ rel }} limit 1000) as s
         where key_hash is distinct from hash(tenant, session_id))
  {%- endset -%}
  {%- set row = run_query(sql).rows[0] -%}
  {{ return(row[0] == 0 and row[1] == 0) }}
{%- endmacro %}
