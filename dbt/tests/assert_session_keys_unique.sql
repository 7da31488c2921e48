-- depends_on: {{ ref('int_build_cutoffs') }}
-- depends_on: {{ ref('int_sessions') }}
-- depends_on: {{ ref('session_sequences') }}
{#- Each session key (tenant, session_id) names one session of int_sessions, rejected ones included:
    session_sequences' session_uid is built from it, and a full build groups every event of a key into
    one session. An incremental build checks the keys of the sessions it rebuilt against every
    session's: a rebuilt session repeating the key of one kept from before (a session id reused after
    more than a gap, which a full refresh would build as one session) fails here, and the warehouse
    then needs a full refresh. The keys are compared by `key_hash` (one integer a session) and read as
    text only where a hash repeats; by text when a stored hash no longer matches the warehouse's hash
    function (written by another DuckDB version, or before the column existed: a full refresh
    restores it). A full build cannot repeat a key (its roll-up groups by it) and reads nothing here.
    The test also names session_sequences so that dbt runs it beside items and quarantine, not before
    them: dbt holds back the models downstream of every model a test reads, and none is downstream of
    session_sequences. -#}
{%- set cuts = built_cutoffs() %}
{%- if cuts %}
{%- set rebuilt = after_cutoff(cuts, 'tenant', 'first_ms', or_null=true) %}
{%- if session_key_hashes_hold(cuts) %}
-- equal keys have equal hashes: the keys are compared only where a rebuilt session's hash repeats
with repeated_hashes as (
    select key_hash
    from {{ ref('int_sessions') }}
    where key_hash in (select key_hash from {{ ref('int_sessions') }} where {{ rebuilt }})
    group by key_hash
    having count(*) > 1
)

select tenant, session_id, count(*) as n_rows
from {{ ref('int_sessions') }}
where key_hash in (select key_hash from repeated_hashes)
group by tenant, session_id
having count(*) > 1
{%- else %}
select tenant, session_id, count(*) as n_rows
from {{ ref('int_sessions') }}
where session_id in (select session_id from {{ ref('int_sessions') }}
                     where {{ rebuilt }})
group by tenant, session_id
having count(*) > 1
{%- endif %}
{%- else %}
-- a full build: int_sessions' roll-up groups by (tenant, session_id), so no key can repeat
select cast(null as varchar) as tenant, cast(null as varchar) as session_id, 0 as n_rows
where 1 = 0
{%- endif %}
