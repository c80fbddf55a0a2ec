-- description: Site and email events up to the end of the as-of day; an event_id keeps its first occurrence (earliest landing day, then file row).
-- owners: team:data
-- unique_key: event_id
-- count_by: event_type
with occurrences as (
    select
        *,
        row_number() over (partition by event_id order by _landing_date, _source_file, _row_number) as occurrence
    from raw.interactions
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
    search_query
from occurrences
where occurrence = 1
  and occurred_at < $as_of::date + 1
