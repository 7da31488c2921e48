{#- Every session's timestamps are non-decreasing and its lists agree with its length: the query and
    every model downstream rely on items being in time order. -#}
select session_uid, length
from {{ ref('session_sequences') }}
where not ({{ list_is_sorted('timestamps') }})
   or {{ list_length('items') }} <> length
   or {{ list_length('timestamps') }} <> length
   or session_end_ms < session_start_ms
