-- description: Customers known as of the date, one row per customer_id: each field as its latest change set it (a partial row changes only the fields it carries), over the rows landed on or before the as-of day (a customer landed only later is a backfill: its earliest landing day is used), registered by the end of the as-of day. The latest change is the one with the latest change time (updated_at; else registered_at; else the end of its landing day), then the later landing day; a consent withdrawal wins a tie, then the later file and row (docs/data_contract.md). Built incrementally by customer_id: a build recomputes, from their whole history, only the customer_ids with raw rows landed, re-ingested or gone since the last one (full_refresh recomputes all).
-- owners: team:data
-- unique_key: customer_id
-- materialization: incremental
-- incremental_key: customer_id
with first_landings as (
    select customer_id, min(_landing_date) as first_landed_on from raw.customers group by customer_id
),
changes as (
    select
        customers.*,
        coalesce(updated_at, registered_at, _landing_date + interval 1 day) as changed_at
    from raw.customers as customers
    join first_landings using (customer_id)
    where _landing_date <= $as_of::date
        or (first_landed_on > $as_of::date and _landing_date = first_landed_on)
),
merged as (
    select
        customer_id,
        arg_max(email, (changed_at, _landing_date, _source_file, _row_number)) filter (where email is not null) as email,
        arg_max(first_name, (changed_at, _landing_date, _source_file, _row_number)) filter (where first_name is not null) as first_name,
        arg_max(registered_at, (changed_at, _landing_date, _source_file, _row_number)) filter (where registered_at is not null) as registered_at,
        arg_max(birthday, (changed_at, _landing_date, _source_file, _row_number)) filter (where birthday is not null) as birthday,
        arg_max(timezone, (changed_at, _landing_date, _source_file, _row_number)) filter (where timezone is not null) as timezone,
        arg_max(
            marketing_consent, (changed_at, _landing_date, not marketing_consent, _source_file, _row_number)
        ) filter (where marketing_consent is not null) as marketing_consent,
        max(changed_at) as changed_at,
        max(_landing_date) as landed_on
    from changes
    group by customer_id
)
select
    customer_id,
    email,
    first_name,
    registered_at,
    registered_at::date as registered_on,
    birthday,
    timezone,
    marketing_consent,
    changed_at,
    landed_on
from merged
where registered_at < $as_of::date + 1
