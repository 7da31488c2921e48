-- depends_on: {{ ref('int_build_cutoffs') }}
{#- Every session's timestamps are non-decreasing and its lists agree with its length: the query and
    every model downstream rely on items being in time order. The item list checked is the stored
    one (`item_keys` on DuckDB, which `items` names element by element, so it has the same length):
    checking `items` itself would name a million sessions' items only to count them (0.8 CPU s of
    this test's 1.3 at 10M events). An incremental build checks the sessions it rebuilt (those
    starting from its cutoff on; the others were checked when they were built). -#}
select session_uid, length
from {{ ref('session_sequences') }}
where ({{ after_cutoff(built_cutoffs(), 'tenant', 'session_start_ms') }}) and (not ({{ list_is_sorted('timestamps') }})
   or {{ list_length(session_item_list()) }} <> length
   or {{ list_length('timestamps') }} <> length
   or session_end_ms < session_start_ms)
