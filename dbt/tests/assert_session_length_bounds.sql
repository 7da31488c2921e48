-- depends_on: {{ ref('int_build_cutoffs') }}
{#- Session lengths stay within [2, var('max_session_length')]: shorter and longer (bot) sessions
    must have been quarantined, never built. An incremental build checks the sessions it rebuilt. -#}
select session_uid, length
from {{ ref('session_sequences') }}
where ({{ after_cutoff(built_cutoffs(), 'tenant', 'session_start_ms') }}) and (length < 2 or length > {{ var('max_session_length') | int }})
