{#- Session lengths stay within [2, var('max_session_length')]: shorter and longer (bot) sessions
    must have been quarantined, never built. -#}
select session_uid, length
from {{ ref('session_sequences') }}
where length < 2 or length > {{ var('max_session_length') | int }}
