-- description: What goes with a product, as chances: per pair of products in the same completed orders (marts.product_affinity), the chance that an order holding the product also holds the other (`chance_together`), shrunk toward the other's share of all orders (`chance_alone`) when the product is in few orders (as if it had 10 more orders with the other at its usual share), and `added_chance` = chance_together - chance_alone: how much the product raises the other's chance. Read by marts.site_recommendations and marts.checkout_cross_sell.
-- owners: team:data
-- unique_key: product_id, related_product_id
with order_products as (
    select distinct order_id, product_id
    from staging.stg_order_items
    where is_purchase
),
product_orders as (
    select product_id, count(*) as orders_with_product, count(*) / any_value(orders_total) as chance_alone
    from order_products
    cross join (select count(distinct order_id) as orders_total from order_products) as all_orders
    group by product_id
),
chances as (
    select
        affinity.product_id,
        affinity.related_product_id,
        affinity.orders_together,
        related.chance_alone,
        (affinity.orders_together + $cross_sell_prior_orders * related.chance_alone)
            / (product.orders_with_product + $cross_sell_prior_orders) as chance_together
    from marts.product_affinity as affinity
    join product_orders as product on product.product_id = affinity.product_id
    join product_orders as related on related.product_id = affinity.related_product_id
)
select
    product_id,
    related_product_id,
    orders_together,
    chance_together,
    chance_alone,
    chance_together - chance_alone as added_chance
from chances
