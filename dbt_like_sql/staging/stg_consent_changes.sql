-- description: Marketing consent history for audit: every landed customers row that states consent, landed on or before the as-of day, with when it holds (change time: updated_at, else registered_at, else the end of its landing day), what it says, the file and line it came from, and whether it changed the customer's consent. In the order stg_customers applies them, so its last row per customer is the consent in force. Built incrementally by customer_id: a build recomputes, from their whole history, only the customer_ids with raw rows landed, re-ingested or gone since the last one (full_refresh recomputes all).
-- owners: team:data
-- unique_key: source_file, row_number
-- materialization: incremental
-- incremental_key: customer_id
-- count_by: marketing_consent
select
    customer_id,
    marketing_consent,
    changed_at,
    landed_on,
    source_file,
    row_number,
    marketing_consent is distinct from lag(marketing_consent) over by_change as is_change
from (
    select
        customer_id,
        marketing_consent,
        coalesce(updated_at, registered_at, _landing_date + interval 1 day) as changed_at,
        _landing_date as landed_on,
        _source_file as source_file,
        _row_number as row_number
    from raw.customers
    where marketing_consent is not null and _landing_date <= $as_of::date
) as stated
window by_change as (partition by customer_id order by changed_at, landed_on, not marketing_consent, source_file, row_number)
