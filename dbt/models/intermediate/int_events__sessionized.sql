-- depends_on: {{ ref('int_build_cutoffs') }}
{{ config(materialized="ephemeral") }}
{#- Accepted events, each with a session id (exact duplicates are removed by int_sessions). Sources with a
    session id keep it; rows with only a user id (e.g. Taobao) are cut into sessions after
    var('session_gap_minutes') of inactivity. The two cases are separate branches of a union so that
    the window runs only over user-keyed rows (partitioning keyed rows by a null user id would sort
    them all as one partition). Ephemeral: only int_sessions reads it, so the 10M-row event level is
    never written to disk; narrow on purpose: the raw text columns stay in staging. -#}
{%- set gap_ms = (var('session_gap_minutes') | float * 60000) | int -%}
{#- Each branch reads staging itself: a CTE read by both would be materialised (every accepted event
    buffered once more). var('sessionize_by_user') is false when the raw format has no user column:
    then a row without a session id has no user id either, is quarantined as null_session, and the
    gap-based branch (a second pass over staging) would always be empty, so it is left out.
    An incremental build (macros/incremental_sessions.sql) re-reads only the events at or after each
    tenant's cutoff, less those of the sessions kept from before it; user sessions are numbered on
    from the user's kept ones (`session_user` carries the user id for that). -#}
{%- set cuts = built_cutoffs() -%}
{%- set built = built_sessions_relation() if cuts else none %}

with keyed as (
    select
        tenant,
        session_key as session_id,
        cast(null as varchar) as session_user,
        sku,
        sku_raw,
        action,
        ts_ms
    from {{ ref('int_events__checked') }} as e
    where reject_reason is null and session_key is not null and {{ staged_after_cutoff(cuts) }}
    {%- if built is not none %}
        and not exists (
            select 1 from {{ built }} as b
            where b.tenant = e.tenant and b.session_id = e.session_key and b.session_user is null
                and {{ after_cutoff(cuts, 'b.tenant', 'b.last_ms') }}
        )
    {%- endif %}
),
{%- if var('sessionize_by_user', true) %}

user_gaps as (
    select
        tenant,
        user_key,
        sku,
        sku_raw,
        action,
        ts_ms,
        case
            when ts_ms - lag(ts_ms) over (partition by tenant, user_key order by ts_ms, sku, action)
                <= {{ gap_ms }} then 0
            else 1
        end as starts_session
    from {{ ref('int_events__checked') }} as e
    where reject_reason is null and session_key is null and {{ staged_after_cutoff(cuts) }}
    {%- if built is not none %}
        and not exists (
            select 1 from {{ built }} as b
            where b.tenant = e.tenant and b.session_user = e.user_key and b.last_ms >= e.ts_ms
        )
    {%- endif %}
),
{%- if built is not none %}

-- each user's sessions kept from before the cutoff: the rebuilt ones are numbered after them
kept_per_user as (
    select tenant, session_user, count(*) as n_kept_sessions
    from {{ built }}
    where session_user is not null
    group by tenant, session_user
),
{%- endif %}

user_sessions as (
    select
        g.tenant,
        g.user_key || '-' || cast(
            {% if built is not none %}coalesce(k.n_kept_sessions, 0) + {% endif -%}
            sum(g.starts_session) over (
                partition by g.tenant, g.user_key order by g.ts_ms, g.sku, g.action
                rows between unbounded preceding and current row
            ) as varchar
        ) as session_id,
        g.user_key as session_user,
        g.sku,
        g.sku_raw,
        g.action,
        g.ts_ms
    from user_gaps as g
    {%- if built is not none %}
    left join kept_per_user as k
        on g.tenant = k.tenant and g.user_key = k.session_user
    {%- endif %}
),
{%- endif %}

sessioned as (
    select * from keyed
    {%- if var('sessionize_by_user', true) %}
    union all
    select * from user_sessions
    {%- endif %}
)

select
    tenant,
    session_id,
    session_user,
    sku,
    sku_raw,
    action,
    {{ action_rank('action') }} as action_rank,
    case when action in {{ sql_string_list(var('actions')) }} then 1 else 0 end as is_kept,
    ts_ms
from sessioned
