-- description: Products ranked by how many customers bought them in the 90 days up to the date (all time as a tie-break): the fallback for recommendations when affinity knows nothing.
-- owners: team:data
-- unique_key: product_id
with buyers as (
    select
        product_id,
        count(distinct customer_id) filter (where ordered_on > $as_of::date - 90) as buyers_last_90_days,
        count(distinct customer_id) as buyers_all_time
    from staging.stg_order_items
    where is_purchase
    group by product_id
)
select
    products.product_id,
    products.name,
    products.category,
    coalesce(buyers.buyers_last_90_days, 0) as buyers_last_90_days,
    coalesce(buyers.buyers_all_time, 0) as buyers_all_time,
    row_number() over (
        order by coalesce(buyers.buyers_last_90_days, 0) desc, coalesce(buyers.buyers_all_time, 0) desc, products.product_id
    ) as popularity_rank
from staging.stg_products as products
left join buyers using (product_id)
