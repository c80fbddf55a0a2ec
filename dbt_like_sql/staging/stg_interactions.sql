-- description: Site and email events up to the end of the as-of day; an event_id keeps its first occurrence (earliest landing day, then file and row). Built incrementally by landing day: a build reads the raw rows of the landing days ingested since the last one, and a re-ingested past day rebuilds the events from that day on (full_refresh rebuilds every day); many days are read a slice of days at a time.
-- owners: team:data
-- unique_key: event_id
-- materialization: incremental
-- incremental_by: landed_on
-- count_by: event_type
with landed as (
    select *
    from raw.interactions
    where _landing_date >= $since::date and _landing_date < $until::date
),
-- An event_id that already landed before $since keeps that first occurrence (rebuilt by no later
-- landing day); only the ids of the new days are looked up in the earlier ones.
seen_before as (
    select event_id
    from raw.interactions
    where _landing_date < $since::date and event_id in (select event_id from landed)
),
new_events as (
    select * from landed where event_id not in (select event_id from seen_before)
),
-- An id landed more than once (a resent export) is rare: only those rows are ranked.
landed_twice as (
    select event_id from new_events group by event_id having count(*) > 1
),
first_occurrences as (
    select * from new_events where event_id not in (select event_id from landed_twice)
    union all by name
    select *
    from new_events
    where event_id in (select event_id from landed_twice)
    qualify row_number() over (partition by event_id order by _landing_date, _source_file, _row_number) = 1
)
select
    event_id,
    occurred_at,
    occurred_at::date as occurred_on,
    event_type,
    customer_id,
    anonymous_id,
    product_id,
    letter_key,
    search_query,
    _landing_date as landed_on
from first_occurrences
where occurred_at < $as_of::date + 1
