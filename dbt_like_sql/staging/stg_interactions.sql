-- description: Site and email events up to the end of the as-of day; an event_id keeps its first occurrence (earliest landing day, then file and row).
-- owners: team:data
-- unique_key: event_id
-- count_by: event_type
select *
from (
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
    from raw.interactions
    qualify row_number() over (partition by event_id order by _landing_date, _source_file, _row_number) = 1
) as first_occurrences
where occurred_at < $as_of::date + 1
