-- description: One row per customer and purchase day (days with at least one completed order), with the purchase rhythm so far: the typical gap, the departing threshold in force after that day, and whether the purchase was a return from departing. Built incrementally by customer_id: a build recomputes, from their whole history, only the customers named by an order whose raw rows landed, were re-ingested or vanished since the last one, before or after the change (an order moved to another customer recomputes both; full_refresh recomputes all).
-- owners: team:data
-- unique_key: customer_id, purchase_on
-- materialization: incremental
-- incremental_key: customer_id
with purchases as (
    select
        customer_id,
        ordered_on as purchase_on,
        count(*) as orders_that_day,
        sum(total_amount) as amount_that_day
    from staging.stg_orders
    where is_purchase
    group by customer_id, ordered_on
),
numbered as (
    select
        *,
        row_number() over by_day as purchase_number,
        purchase_on - lag(purchase_on) over by_day as gap_days
    from purchases
    window by_day as (partition by customer_id order by purchase_on)
),
with_rhythm as (
    select
        *,
        -- The median of the gaps so far: robust against one long holiday break.
        median(gap_days) over (
            partition by customer_id order by purchase_on rows between unbounded preceding and current row
        ) as typical_gap_days
    from numbered
),
with_threshold as (
    select
        *,
        purchase_number >= $rhythm_min_purchase_days as has_rhythm,
        case
            when purchase_number >= $rhythm_min_purchase_days
                then greatest($rhythm_min_departing_days, ceil($rhythm_overdue_multiple * typical_gap_days))::integer
            else $departing_days
        end as departing_after_days,
        case
            when purchase_number >= $rhythm_min_purchase_days
                then purchase_on + round(typical_gap_days)::integer
        end as expected_next_purchase_on
    from with_rhythm
),
with_return as (
    select
        *,
        coalesce(gap_days >= lag(departing_after_days) over by_day, false) as is_return
    from with_threshold
    window by_day as (partition by customer_id order by purchase_on)
)
select
    customer_id,
    purchase_on,
    purchase_number,
    orders_that_day,
    amount_that_day,
    gap_days,
    typical_gap_days,
    has_rhythm,
    departing_after_days,
    expected_next_purchase_on,
    is_return,
    max(case when is_return then purchase_on end) over (
        partition by customer_id order by purchase_on rows between unbounded preceding and current row
    ) as last_return_on
from with_return
