-- description: Lines of the orders placed by the end of the as-of day (latest landed version of each line), with the order's customer and whether it is a purchase. Built incrementally by order_id: a build recomputes, from their whole history, only the order_ids with raw rows landed, re-ingested or gone since the last one (full_refresh recomputes all).
-- owners: team:data
-- unique_key: order_id, line_number
-- materialization: incremental
-- incremental_key: order_id
select
    items.order_id,
    items.line_number,
    items.product_id,
    items.quantity,
    items.unit_price,
    orders.customer_id,
    orders.ordered_at,
    orders.ordered_on,
    orders.is_purchase
from (
    select order_id, line_number, product_id, quantity, unit_price
    from raw.order_items
    qualify row_number() over (
        partition by order_id, line_number
        order by
            landed_as_of_order(_landing_date, $as_of::date),
            _row_number asc
    ) = 1
) as items
join staging.stg_orders as orders using (order_id)
