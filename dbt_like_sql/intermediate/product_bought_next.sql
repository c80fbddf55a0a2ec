-- description: What customers come back for: per product A and product B, over every repeat purchase day of every customer, how often B was bought that day by a customer who had bought A on an earlier day (`purchases_after`, `with_related`), the chance of B on such a day (`chance_next`, shrunk toward B's share of all repeat purchase days, `chance_alone`, as if A had cross_sell_prior_orders more such days at B's usual share), and `added_chance` = the difference. Read by intermediate.site_recommendation_relations, which is learnt once a week: so is this table, as known on the same learning day (the latest day of a grid of recommendations_learn_every_days days, Mondays for 7) from what had landed by then, and a daily build keeps it (models/learning.py).
-- owners: team:data
-- unique_key: product_id, related_product_id
-- built_by: lifecycle_assets.models.learning:learn_as_known_on
-- learnt_every: recommendations_learn_every_days
with purchase_products as (
    select distinct customer_id, ordered_on, product_id
    from staging.stg_order_items
    where is_purchase
),
repeat_days as (
    -- every purchase day after a customer's first
    select customer_id, ordered_on
    from (select distinct customer_id, ordered_on from purchase_products)
    qualify ordered_on > min(ordered_on) over (partition by customer_id)
),
bought_before as (
    -- (repeat purchase day, product the customer had bought on an earlier day)
    select distinct repeat_days.customer_id, repeat_days.ordered_on, earlier.product_id
    from repeat_days
    join purchase_products as earlier
        on earlier.customer_id = repeat_days.customer_id and earlier.ordered_on < repeat_days.ordered_on
),
days_after as (
    select product_id, count(*) as purchases_after from bought_before group by product_id
),
chance_alone as (
    select product_id, count(*) / (select count(*) from repeat_days) as chance_alone
    from purchase_products
    semi join repeat_days using (customer_id, ordered_on)
    group by product_id
),
pairs as (
    select bought_before.product_id, bought.product_id as related_product_id, count(*) as with_related
    from bought_before
    join purchase_products as bought
        on bought.customer_id = bought_before.customer_id and bought.ordered_on = bought_before.ordered_on
    where bought.product_id <> bought_before.product_id
    group by all
)
select
    pairs.product_id,
    pairs.related_product_id,
    days_after.purchases_after,
    pairs.with_related,
    (pairs.with_related + $cross_sell_prior_orders * related.chance_alone)
        / (days_after.purchases_after + $cross_sell_prior_orders) as chance_next,
    related.chance_alone,
    chance_next - related.chance_alone as added_chance
from pairs
join days_after using (product_id)
join chance_alone as related on related.product_id = pairs.related_product_id
