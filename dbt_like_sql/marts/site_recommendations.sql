-- description: The site's recommendation block: per known customer and per anonymous visitor who showed some interest, the top recommendations_site_count products by their estimated chance to be in the visitor's next order, never one they already bought. A product's chance starts at its share of all completed orders (`popular`); it rises by the largest added_chance of what buyers of the customer's products came back for (intermediate.product_bought_next: `bought_next`) and of what goes in one order with a product they carted or viewed in the last recommendations_interest_days, times the chance they buy that product (intermediate.product_goes_with: `goes_with`); pairs count from cross_sell_min_orders orders. A carted or viewed product itself counts at the share of such products the shop's customers bought later (intermediate.looked_then_bought: `carted`, `viewed`). A visitor without rows gets the `default` rows (visitor_id empty). Exported by recommendations/site_recommendation_files; described in docs/recommendations.md.
-- owners: team:data
-- unique_key: visitor_type, visitor_id, recommendation_rank
-- count_table: visitor_type, source
-- preview_rows: 20
-- batch_keys: staging.stg_order_items: customer_id
-- batch_keys: staging.stg_interactions: coalesce(customer_id, anonymous_id)
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
bought as (
    -- from here on only this statement's visitors: batch $batch of $batches by a hash of the visitor's id. A visitor's
    -- rows depend on their own interest and the shop-wide CTEs, so a large shop is built a batch at a time.
    select distinct 'customer' as visitor_type, customer_id as visitor_id, product_id, 'bought' as kind,
        null::double as next_order_chance
    from purchases
    where hash(customer_id) % $batches::ubigint = $batch
),
looked_at as (
    -- carted or viewed lately, the strongest kind per visitor and product
    select
        case when customer_id is null then 'anonymous' else 'customer' end as visitor_type,
        coalesce(customer_id, anonymous_id) as visitor_id,
        product_id,
        case when bool_or(event_type = 'add_to_cart') then 'carted' else 'viewed' end as kind
    from staging.stg_interactions
    semi join staging.stg_products using (product_id)
    where event_type in ('product_view', 'add_to_cart')
        and coalesce(customer_id, anonymous_id) is not null
        and occurred_on > $as_of::date - $recommendations_interest_days
        and hash(coalesce(customer_id, anonymous_id)) % $batches::ubigint = $batch
    group by all
),
later_purchase as (
    -- learnt from the shop's history (intermediate.looked_then_bought): of the products a customer first carted
    -- (viewed) on a day without buying them that day, the share they bought within the next recommendations_interest_days
    select kind, avg(bought_later::integer) as chance
    from intermediate.looked_then_bought
    group by kind
),
interest as (
    select visitor_type, visitor_id, product_id, kind, next_order_chance from bought
    union all
    select looked_at.visitor_type, looked_at.visitor_id, looked_at.product_id, looked_at.kind,
        coalesce(later_purchase.chance, 0)
    from looked_at
    left join later_purchase using (kind)
    anti join bought using (visitor_type, visitor_id, product_id)
),
visitors as (
    -- visitors and products (popularity_position) are handled by number from here on, which is much cheaper to join,
    -- group and sort than their ids
    select visitor_type, visitor_id, row_number() over (order by visitor_type, visitor_id) as visitor_number
    from (
        select distinct visitor_type, visitor_id from interest
        union all
        select 'default', null where $batch = 0
    )
),
visitor_interest as (
    select visitors.visitor_number, interest.product_id, order_share.popularity_position as position, interest.kind,
        interest.next_order_chance
    from interest
    join visitors using (visitor_type, visitor_id)
    join order_share using (product_id)
),
visitor_reach as (
    -- popular_reach: the position of the visitor's recommendations_site_count-th popular product they did not buy
    -- (a bought product at position q with k bought ones before it has q - 1 - k products not bought before it; it
    -- lies within the reach when that is fewer than recommendations_site_count). The popular products up to there hold
    -- exactly recommendations_site_count products they did not buy, and each has a chance of at least visitor_floor
    -- (the share at popular_reach): a candidate below that floor can never make their top, nor can a popular
    -- product beyond the reach.
    select visitors.visitor_number, count(bought.position) as products_bought,
        $recommendations_site_count + count(bought.position) filter (
            where bought.position - 1 - bought.bought_before < $recommendations_site_count
        ) as popular_reach
    from visitors
    left join (
        select visitor_number, position, row_number() over (partition by visitor_number order by position) - 1 as bought_before
        from visitor_interest
        where kind = 'bought'
    ) as bought using (visitor_number)
    group by visitors.visitor_number
),
visitor_floors as (
    select visitor_reach.*, coalesce(order_share.chance, 0) as visitor_floor
    from visitor_reach
    left join order_share on order_share.popularity_position = visitor_reach.popular_reach
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
),
interest_floors as materialized (
    -- each product of interest with its visitor's room (products_bought) and floor. Materialized, so that the
    -- candidates join it to the related products by product: with the three in one join, DuckDB once joined the
    -- floors to the related products first, on the inequalities alone (365M rows for 1/50 of a 5M shop's visitors)
    select visitor_interest.visitor_number, visitor_interest.kind, visitor_interest.product_id,
        visitor_floors.products_bought, visitor_floors.visitor_floor
    from visitor_interest
    join visitor_floors using (visitor_number)
),
candidates as (
    -- only the candidates that can still make the visitor's top (see visitor_reach and related). source_code: the
    -- source as a number (1 popular, 2 viewed, 3 carted, 4 goes_with, 5 bought_next), cheaper to group and sort than
    -- its name; the more personal sources have the higher numbers.
    select interest_floors.visitor_number, related.popularity_position as position, related.chance, related.source_code
    from interest_floors
    join related using (kind, product_id)
    where related.list_rank <= $recommendations_site_count + interest_floors.products_bought
        and related.chance >= interest_floors.visitor_floor
    union all
    select visitor_number, position, next_order_chance, case kind when 'carted' then 3 else 2 end
    from visitor_interest
    where kind <> 'bought' and next_order_chance > 0
    union all
    -- the popular products up to the visitor's reach: recommendations_site_count of them not bought
    select visitor_floors.visitor_number, order_share.popularity_position, order_share.chance, 1
    from visitor_floors
    join order_share on order_share.popularity_position <= visitor_floors.popular_reach
),
best as (
    -- a product found several ways counts once, at its highest chance (a tie goes to the more personal source:
    -- related products first, then the carted or viewed product itself, of which a visitor has one row per product;
    -- per source rather than arg_max over a (chance, source) struct, which costs twice as much)
    select visitor_number, position, max(chance) as chance,
        case
            when max(chance) filter (where source_code >= 4) = max(chance)
                then arg_max(source_code, chance) filter (where source_code >= 4)
            when max(chance) filter (where source_code >= 2) = max(chance)
                then max(source_code) filter (where source_code in (2, 3))
            else 1
        end as source_code
    from candidates
    anti join (select visitor_number, position from visitor_interest where kind = 'bought') using (visitor_number, position)
    group by all
),
top_products as (
    -- the highest chances first; among equal chances the more popular product
    select visitor_number, position, source_code, chance,
        row_number() over (partition by visitor_number order by chance desc, position) as recommendation_rank
    from best
    qualify recommendation_rank <= $recommendations_site_count
)
select
    visitors.visitor_type,
    visitors.visitor_id,
    top_products.recommendation_rank,
    order_share.product_id,
    ['popular', 'viewed', 'carted', 'goes_with', 'bought_next'][top_products.source_code] as source,
    round(top_products.chance, 4) as chance
from top_products
join visitors using (visitor_number)
join order_share on order_share.popularity_position = top_products.position
