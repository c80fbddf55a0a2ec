-- description: The catalogue as of the date: per product_id the latest row landed on or before the as-of day, and the day it first landed. Built incrementally by product_id: a build recomputes, from their whole history, only the product_ids with raw rows landed, re-ingested or gone since the last one (full_refresh recomputes all).
-- owners: team:data
-- unique_key: product_id
-- materialization: incremental
-- incremental_key: product_id
select
    product_id, name, category, price, rebuy_interval_days, url, image_url, _landing_date as landed_on,
    -- when the product first came into the catalogue (the active buyers' series offers new arrivals)
    min(_landing_date) filter (where _landing_date <= $as_of::date) over (partition by product_id) as first_landed_on
from raw.products
qualify row_number() over (
    partition by product_id
    order by
        landed_as_of_order(_landing_date, $as_of::date),
        _row_number asc
) = 1
