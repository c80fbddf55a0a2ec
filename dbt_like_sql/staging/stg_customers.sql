-- description: Customers known as of the date: per customer_id the latest row landed on or before the as-of day (a row landed only later is a backfill: its earliest landing is used), registered by the end of the as-of day.
-- owners: team:data
-- unique_key: customer_id
select *
from (
    select
        customer_id,
        email,
        first_name,
        registered_at,
        registered_at::date as registered_on,
        birthday,
        timezone,
        marketing_consent,
        _landing_date as landed_on
    from raw.customers
    qualify row_number() over (
        partition by customer_id
        order by
            (_landing_date <= $as_of::date) desc,
            case when _landing_date <= $as_of::date then _landing_date end desc,
            _landing_date asc,
            _row_number asc
    ) = 1
) as latest
where registered_at < $as_of::date + 1
