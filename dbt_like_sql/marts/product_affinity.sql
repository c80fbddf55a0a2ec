-- description: Products bought together: for each product, the other products found in the same completed orders, with how often (orders_together), the confidence (share of the product's orders that also hold the other) and the lift; used for cross-sell and recommendations.
-- owners: team:data
-- unique_key: product_id, related_product_id
with order_products as (
    select distinct order_id, product_id
    from staging.stg_order_items
    where is_purchase
),
product_orders as (
    select product_id, count(*) as orders_with_product
    from order_products
    group by product_id
),
all_orders as (
    select count(distinct order_id) as orders_total from order_products
),
pairs as (
    select left_side.product_id, right_side.product_id as related_product_id, count(*) as orders_together
    from order_products as left_side
    join order_products as right_side
        on left_side.order_id = right_side.order_id and left_side.product_id <> right_side.product_id
    group by all
)
select
    pairs.product_id,
    pairs.related_product_id,
    pairs.orders_together,
    pairs.orders_together / product_orders.orders_with_product as confidence,
    pairs.orders_together * all_orders.orders_total
        / (product_orders.orders_with_product * related.orders_with_product) as lift,
    row_number() over (
        partition by pairs.product_id
        order by pairs.orders_together desc, related.orders_with_product desc, pairs.related_product_id
    ) as affinity_rank
from pairs
join product_orders using (product_id)
join product_orders as related on related.product_id = pairs.related_product_id
cross join all_orders
