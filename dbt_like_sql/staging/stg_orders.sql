-- description: Orders placed by the end of the as-of day, each in its latest status landed on or before that day (completed, cancelled, refunded); only completed orders are purchases. The latest change is the row with the latest change time (updated_at, else ordered_at), then the later landing day; on a tie a later status in an order's life (cancelled, refunded) wins over completed, then the later file and row (docs/data_contract.md). Built incrementally by order_id: a build recomputes, from their whole history, only the order_ids with raw rows landed, re-ingested or gone since the last one (full_refresh recomputes all).
-- owners: team:data
-- unique_key: order_id
-- materialization: incremental
-- incremental_key: order_id
-- count_by: status
select *
from (
    select
        order_id,
        customer_id,
        ordered_at,
        ordered_at::date as ordered_on,
        status,
        status = 'completed' as is_purchase,
        total_amount,
        _landing_date as landed_on
    from raw.orders
    qualify row_number() over (
        partition by order_id
        order by
            (_landing_date <= $as_of::date) desc,
            case when _landing_date <= $as_of::date then coalesce(updated_at, ordered_at) end desc,
            landed_as_of_order(_landing_date, $as_of::date),
            status <> 'completed' desc,
            _source_file desc,
            _row_number desc
    ) = 1
) as latest
where ordered_at < $as_of::date + 1
