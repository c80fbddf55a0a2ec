-- description: The site's recommendation block: per known customer and per anonymous visitor who showed some interest, the top recommendations_site_count products by their estimated chance to be in the visitor's next order, never one they already bought. A product's chance starts at its share of all completed orders (`popular`); it rises by the largest added_chance of what buyers of the customer's products came back for (intermediate.product_bought_next: `bought_next`) and of what goes in one order with a product they carted or viewed in the last recommendations_interest_days, times the chance they buy that product (intermediate.product_goes_with: `goes_with`); pairs count from cross_sell_min_orders orders. A carted or viewed product itself counts at the share of such products the shop's customers bought later (`carted`, `viewed`). A visitor without rows gets the `default` rows (visitor_id empty). Exported by recommendations/site_recommendation_files; described in docs/recommendations.md.
-- owners: team:data
-- unique_key: visitor_type, visitor_id, recommendation_rank
-- count_table: visitor_type, source
-- preview_rows: 20
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
    select distinct 'customer' as visitor_type, customer_id as visitor_id, product_id, 'bought' as kind,
        null::double as next_order_chance
    from purchases
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
    group by all
),
later_purchase as (
    -- learnt from the shop's history: of the products a customer first carted (viewed) on a day without
    -- buying them that day, the share they bought within the next recommendations_interest_days
    select kind, avg((bought_later is not null)::integer) as chance
    from (
        select looked.kind, looked.customer_id, looked.product_id, any_value(later.ordered_on) as bought_later
        from (
            select customer_id, product_id, case when event_type = 'add_to_cart' then 'carted' else 'viewed' end as kind,
                min(occurred_on) as first_on
            from staging.stg_interactions
            where event_type in ('product_view', 'add_to_cart') and customer_id is not null and product_id is not null
            group by all
        ) as looked
        left join purchases as later
            on later.customer_id = looked.customer_id and later.product_id = looked.product_id
            and later.ordered_on > looked.first_on and later.ordered_on <= looked.first_on + $recommendations_interest_days
        anti join purchases as same_day
            on same_day.customer_id = looked.customer_id and same_day.product_id = looked.product_id
            and same_day.ordered_on = looked.first_on
        where looked.first_on <= $as_of::date - $recommendations_interest_days
        group by all
    ) as outcomes
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
    -- visitor_floor: the chance of the popular product at position recommendations_site_count + products_bought.
    -- The visitor's popular rows reach that far, so at least recommendations_site_count products they did not buy
    -- have a chance above any candidate below that floor: such a candidate can never make their top.
    -- visitor_number: visitors and products (popularity_position) are handled by number from here on, which is
    -- much cheaper to join, group and sort than their ids.
    select visitors.visitor_type, visitors.visitor_id, visitors.products_bought,
        coalesce(order_share.chance, 0) as visitor_floor,
        row_number() over (order by visitors.visitor_type, visitors.visitor_id) as visitor_number
    from (
        select visitor_type, visitor_id, count(*) filter (where kind = 'bought') as products_bought
        from interest
        group by all
        union all
        select 'default', null, 0
    ) as visitors
    left join order_share on order_share.popularity_position = $recommendations_site_count + visitors.products_bought
),
visitor_interest as (
    select visitors.visitor_number, visitors.products_bought, visitors.visitor_floor,
        interest.product_id, order_share.popularity_position as position, interest.kind, interest.next_order_chance
    from interest
    join visitors using (visitor_type, visitor_id)
    join order_share using (product_id)
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
    select kind, product_id, related_product_id, popularity_position, chance, source,
        row_number() over (partition by kind, product_id order by chance desc, popularity_position) as list_rank
    from (
        select 'bought' as kind, pairs.product_id, pairs.related_product_id,
            order_share.chance + pairs.added_chance as chance, 'bought_next' as source, order_share.popularity_position
        from bought_next as pairs
        join order_share on order_share.product_id = pairs.related_product_id
        union all
        select later_purchase.kind, pairs.product_id, pairs.related_product_id,
            order_share.chance + later_purchase.chance * pairs.added_chance, 'goes_with', order_share.popularity_position
        from goes_with as pairs
        cross join later_purchase
        join order_share on order_share.product_id = pairs.related_product_id
        where later_purchase.chance > 0
    )
),
candidates as (
    -- only the candidates that can still make the visitor's top (see visitors and related)
    select visitor_interest.visitor_number, related.popularity_position as position, related.chance, related.source,
        3 as source_priority
    from visitor_interest
    join related using (kind, product_id)
    where related.list_rank <= $recommendations_site_count + visitor_interest.products_bought
        and related.chance >= visitor_interest.visitor_floor
    union all
    select visitor_number, position, next_order_chance, kind, 2
    from visitor_interest
    where kind <> 'bought' and next_order_chance > 0
    union all
    -- enough popular products that recommendations_site_count remain once the bought ones are out
    select visitors.visitor_number, order_share.popularity_position, order_share.chance, 'popular', 1
    from visitors
    join order_share on order_share.popularity_position <= $recommendations_site_count + visitors.products_bought
),
best as (
    -- a product found several ways counts once, at its highest chance (a tie goes to the more personal source;
    -- per priority rather than arg_max over a (chance, priority) struct, which costs twice as much)
    select visitor_number, position, max(chance) as chance,
        case
            when max(chance) filter (where source_priority = 3) = max(chance)
                then arg_max(source, chance) filter (where source_priority = 3)
            when max(chance) filter (where source_priority = 2) = max(chance)
                then arg_max(source, chance) filter (where source_priority = 2)
            else 'popular'
        end as source
    from candidates
    anti join (select visitor_number, position from visitor_interest where kind = 'bought') using (visitor_number, position)
    group by all
),
top_products as (
    -- the highest chances first; among equal chances the more popular product
    select visitor_number, position, source, chance,
        row_number() over (partition by visitor_number order by chance desc, position) as recommendation_rank
    from best
    qualify recommendation_rank <= $recommendations_site_count
)
select
    visitors.visitor_type,
    visitors.visitor_id,
    top_products.recommendation_rank,
    order_share.product_id,
    top_products.source,
    round(top_products.chance, 4) as chance
from top_products
join visitors using (visitor_number)
join order_share on order_share.popularity_position = top_products.position
