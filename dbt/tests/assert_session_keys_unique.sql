-- depends_on: {{ ref('int_build_cutoffs') }}
-- depends_on: {{ ref('int_sessions') }}
-- depends_on: {{ ref('session_sequences') }}
{#- Each session key (tenant, session_id) names one session of int_sessions, rejected ones included:
    session_sequences' session_uid is built from it, and a full build groups every event of a key into
    one session. An incremental build checks the keys of the sessions it rebuilt against every
    session's: a rebuilt session repeating the key of one kept from before (a session id reused after
    more than a gap, which a full refresh would build as one session) fails here, and the warehouse
    then needs a full refresh. Reading every key is this build's one scan of the whole session table.
    A full build cannot repeat a key (its roll-up groups by it) and reads nothing here.
    The test also names session_sequences so that dbt runs it beside items and quarantine, not before
    them: dbt holds back the models downstream of every model a test reads, and none is downstream of
    session_sequences. -#}
{%- set cuts = built_cutoffs() %}
{%- if cuts %}
select tenant, session_id, count(*) as n_rows
from {{ ref('int_sessions') }}
where session_id in (select session_id from {{ ref('int_sessions') }}
                     where {{ after_cutoff(cuts, 'tenant', 'first_ms', or_null=true) }})
group by tenant, session_id
having count(*) > 1
{%- else %}
-- a full build: int_sessions' roll-up groups by (tenant, session_id), so no key can repeat
select cast(null as varchar) as tenant, cast(null as varchar) as session_id, 0 as n_rows
where 1 = 0
{%- endif %}
