-- description: Checkout cross-sell: per product of the catalogue, the cross_sell_count products that go with it, the ones it raises the chance of most first (intermediate.product_goes_with: added_chance above 0, pairs in at least cross_sell_min_orders orders: `bought_together`), filled up with the most popular products (marts.product_popularity: `popular`). Exported by recommendations/site_recommendation_files; described in docs/recommendations.md.
-- owners: team:data
-- unique_key: product_id, cross_sell_rank
-- count_by: source
-- preview_rows: 10
with bought_together as (
    select product_id, related_product_id, orders_together, chance_together, added_chance
    from intermediate.product_goes_with
    where orders_together >= $cross_sell_min_orders and added_chance > 0
),
popular_fill as (
    select products.product_id, popular.related_product_id, popular.popularity_rank
    from staging.stg_products as products
    join (
        select product_id as related_product_id, popularity_rank
        from marts.product_popularity
        where popularity_rank <= 2 * $cross_sell_count + 1
    ) as popular
        on popular.related_product_id <> products.product_id
    anti join bought_together using (product_id, related_product_id)
),
ranked as (
    select
        *,
        row_number() over (
            partition by product_id order by source_order, added_chance desc, popularity_rank, related_product_id
        ) as cross_sell_rank
    from (
        select product_id, related_product_id, 'bought_together' as source, 1 as source_order, orders_together,
            chance_together, added_chance, null as popularity_rank
        from bought_together
        union all
        select product_id, related_product_id, 'popular', 2, 0, null, null, popularity_rank
        from popular_fill
    ) as candidates
    semi join staging.stg_products using (product_id)
)
select
    product_id,
    cross_sell_rank,
    related_product_id,
    source,
    orders_together,
    round(chance_together, 4) as chance_together,
    round(added_chance, 4) as added_chance
from ranked
where cross_sell_rank <= $cross_sell_count
