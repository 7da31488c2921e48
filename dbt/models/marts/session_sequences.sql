{{ config(materialized='view') }}
{#- One row per usable session: its kept product events (var('actions')) as time-ordered lists.
    This is the relation recframe's query reads; Python never re-sorts or re-sessionises.
    A view over int_sessions (incremental by event time): copying a million sessions'
    lists into a second table cost more than the roll-up that built them. On DuckDB the items are
    stored as keys and named here (macros/session_lists.sql); the keys stay as `item_keys`. -#}
{{ sequences_select(ref('int_sessions'), ref('int_item_keys')) }}
