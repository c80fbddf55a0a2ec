-- description: The site's recommendation block: per known customer and per anonymous visitor who showed some interest, the top recommendations_site_count products by their estimated chance to be in the visitor's next order, never one they already bought. A product's chance starts at its share of all completed orders (`popular`); it rises by the largest added_chance of what buyers of the customer's products came back for (`bought_next`) and of what goes in one order with a product they carted or viewed in the last recommendations_interest_days, times the chance they buy that product (`goes_with`); pairs count from cross_sell_min_orders orders. A carted or viewed product itself counts at the share of such products the shop's customers bought later (`carted`, `viewed`). The shares, chances and pairs are learnt as of the learning day (intermediate.site_recommendation_relations); the visitor's own purchases and looks count as of the as-of day, so a daily build recomputes only the visitors whose own interest changed (models/site_visitors.py). A visitor without rows gets the `default` rows (visitor_id empty). Exported by recommendations/site_recommendation_files; described in docs/recommendations.md.
-- owners: team:data
-- unique_key: visitor_type, visitor_id, recommendation_rank
-- count_table: visitor_type, source
-- preview_rows: 20
-- batch_keys: staging.stg_order_items: customer_id
-- batch_keys: staging.stg_interactions: coalesce(customer_id, anonymous_id)
-- built_by: lifecycle_assets.models.site_visitors:build_by_visitor
with order_share as (
    -- learnt as of the learning day (intermediate.site_recommendation_relations), like later_purchase and related
    select product_id, chance, popularity_position
    from intermediate.site_recommendation_relations
    where relation = 'popular'
),
later_purchase as (
    select kind, chance from intermediate.site_recommendation_relations where relation = 'look'
),
related as (
    select kind, product_id, related_product_id, popularity_position, chance, source_code, list_rank
    from intermediate.site_recommendation_relations
    where relation = 'related'
),
bought as (
    -- from here on only this statement's visitors: batch $batch of $batches by a hash of the visitor's id. A visitor's
    -- rows depend on their own interest and the shop-wide CTEs, so a large shop is built a batch at a time.
    select distinct 'customer' as visitor_type, customer_id as visitor_id, product_id, 'bought' as kind,
        null::double as next_order_chance
    from staging.stg_order_items
    where is_purchase and hash(customer_id) % $batches::ubigint = $batch
),
looked_at as (
    -- carted or viewed lately, the strongest kind per visitor and product
    select
        case when customer_id is null then 'anonymous' else 'customer' end as visitor_type,
        coalesce(customer_id, anonymous_id) as visitor_id,
        product_id,
        case when bool_or(event_type = 'add_to_cart') then 'carted' else 'viewed' end as kind
    from staging.stg_interactions
    where event_type in ('product_view', 'add_to_cart')
        and coalesce(customer_id, anonymous_id) is not null
        and occurred_on > $as_of::date - $recommendations_interest_days
        and hash(coalesce(customer_id, anonymous_id)) % $batches::ubigint = $batch
    group by all
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
