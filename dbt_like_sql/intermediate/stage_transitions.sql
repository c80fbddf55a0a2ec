-- description: Every lifecycle stage transition of every customer up to the as-of date, derived from the data: the stage is evaluated on each day it can change (registration, purchases, the day the departing threshold is crossed, the end of the returned window) and kept where it differs from the day before. Built incrementally by customer_id: a build recomputes, from their whole history, the customers whose customer row or purchase days changed since the last one, and, when the as-of day moves, the customers with a change day the as-of day crossed (a stage changes only on a change day, and the as-of day only cuts the change days off: a customer becomes departing on the day the threshold is crossed).
-- owners: team:data
-- unique_key: customer_id, started_on
-- materialization: incremental
-- incremental_key: customer_id
-- as_of_crosses: change_days.day
-- count_by: stage
with change_days as (
    select customer_id, registered_on as day from staging.stg_customers
    union
    select customer_id, purchase_on from intermediate.purchase_days
    union
    select customer_id, purchase_on + departing_after_days from intermediate.purchase_days
    union
    select customer_id, last_return_on + $returned_window_days::integer
    from intermediate.purchase_days
    where last_return_on is not null
),
known_change_days as (
    select change_days.customer_id, change_days.day
    from change_days
    join staging.stg_customers using (customer_id)
    where change_days.day <= $as_of::date
),
stage_on_day as (
    select
        known_change_days.customer_id,
        known_change_days.day,
        case
            when purchase.purchase_on is null then 'visitor'
            when known_change_days.day - purchase.purchase_on >= purchase.departing_after_days then 'departing'
            when known_change_days.day - purchase.last_return_on < $returned_window_days then 'returned'
            when purchase.purchase_number = 1 then 'new_buyer'
            else 'active'
        end as stage
    from known_change_days
    asof left join intermediate.purchase_days as purchase
        on known_change_days.customer_id = purchase.customer_id
        and known_change_days.day >= purchase.purchase_on
),
with_previous as (
    select
        *,
        lag(stage) over (partition by customer_id order by day) as previous_stage
    from stage_on_day
)
select customer_id, day as started_on, stage, previous_stage
from with_previous
where previous_stage is distinct from stage
