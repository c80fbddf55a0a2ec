-- description: What the site's recommendations learn from the whole shop, as of the learning day (the latest day of a grid of recommendations_learn_every_days days, Mondays for 7, on or before the as-of day) and from what had landed by then: each product's share of completed orders and its popularity position (`relation` popular: the chance for a visitor we know nothing about), the share of carted (viewed) products their customers bought later (`relation` look, per `kind`; intermediate.looked_then_bought), and per kind of interest and product the related products that can make a top list, with their chance (`relation` related: what its buyers came back for, intermediate.product_bought_next, and what goes in one order with it, intermediate.product_goes_with, from cross_sell_min_orders orders). Learnt again when the learning day moves or what had landed by it changed (a re-ingested day; models/learning.py), else kept, so that each visitor's list (marts.site_recommendations) is recomputed only when their own interest changed. Described in docs/recommendations.md.
-- owners: team:data
-- built_by: lifecycle_assets.models.learning:learn_as_known_on
-- learnt_every: recommendations_learn_every_days
-- count_by: relation
with purchases as (
    select customer_id, product_id, order_id, ordered_on
    from staging.stg_order_items
    semi join staging.stg_products using (product_id)
    where is_purchase
),
order_share as (
    -- a product's share of all completed orders: the chance for a visitor we know nothing about
    select products.product_id, coalesce(shares.chance, 0) as chance,
        row_number() over (order by coalesce(shares.chance, 0) desc, products.product_id) as popularity_position
    from staging.stg_products as products
    left join (
        select product_id, count(distinct order_id) / (select count(distinct order_id) from purchases) as chance
        from purchases
        group by product_id
    ) as shares using (product_id)
),
later_purchase as (
    -- learnt from the shop's history (intermediate.looked_then_bought): of the products a customer first carted
    -- (viewed) on a day without buying them that day, the share they bought within the next recommendations_interest_days
    select kind, avg(bought_later::integer) as chance
    from intermediate.looked_then_bought
    group by kind
),
bought_next as (
    -- per product, the few products its buyers came back for most (a longer list would never make a top)
    select product_id, related_product_id, added_chance
    from intermediate.product_bought_next
    where with_related >= $cross_sell_min_orders and added_chance > 0
    qualify row_number() over (partition by product_id order by added_chance desc, related_product_id)
        <= 2 * $recommendations_site_count
),
goes_with as (
    select product_id, related_product_id, added_chance
    from intermediate.product_goes_with
    where orders_together >= $cross_sell_min_orders and added_chance > 0
    qualify row_number() over (partition by product_id order by added_chance desc, related_product_id)
        <= 2 * $recommendations_site_count
),
related as (
    -- what one product of interest brings, and at which chance, computed once per product and kind instead of once
    -- per visitor: what buyers of it came back for (bought), or what goes with it in one order (carted, viewed).
    -- list_rank: 1 + how many products of the same list come first; when that many products are ahead of a
    -- candidate, it can only make the top of a visitor who bought enough of them to leave room.
    select kind, product_id, related_product_id, popularity_position, chance, source_code,
        row_number() over (partition by kind, product_id order by chance desc, popularity_position) as list_rank
    from (
        select 'bought' as kind, pairs.product_id, pairs.related_product_id,
            order_share.chance + pairs.added_chance as chance, 5 as source_code, order_share.popularity_position
        from bought_next as pairs
        join order_share on order_share.product_id = pairs.related_product_id
        union all
        select later_purchase.kind, pairs.product_id, pairs.related_product_id,
            order_share.chance + later_purchase.chance * pairs.added_chance, 4, order_share.popularity_position
        from goes_with as pairs
        cross join later_purchase
        join order_share on order_share.product_id = pairs.related_product_id
        where later_purchase.chance > 0
    )
)
select 'popular' as relation, null::varchar as kind, product_id, null::varchar as related_product_id, popularity_position,
    chance, 1 as source_code, null::bigint as list_rank
from order_share
union all
select 'look', kind, null, null, null, chance, null, null
from later_purchase
union all
select 'related', kind, product_id, related_product_id, popularity_position, chance, source_code, list_rank
from related
