-- description: Each product's re-buy interval in days: the declared one from the catalogue, else the median gap between a customer's consecutive purchases of it, learnt once enough re-buys have been seen; NULL for durable goods nobody re-buys.
-- owners: team:data
-- unique_key: product_id
-- count_by: interval_source
with purchase_days as (
    select distinct customer_id, product_id, ordered_on
    from staging.stg_order_items
    where is_purchase
),
rebuy_gaps as (
    select
        product_id,
        ordered_on - lag(ordered_on) over (partition by customer_id, product_id order by ordered_on) as gap_days
    from purchase_days
),
learnt as (
    select product_id, count(gap_days) as rebuys_seen, median(gap_days) as learnt_interval_days
    from rebuy_gaps
    where gap_days is not null
    group by product_id
)
select
    products.product_id,
    products.name,
    products.category,
    products.rebuy_interval_days as declared_interval_days,
    learnt.learnt_interval_days,
    coalesce(learnt.rebuys_seen, 0) as rebuys_seen,
    case
        when products.rebuy_interval_days > 0 then products.rebuy_interval_days
        when learnt.rebuys_seen >= $rebuy_min_observations then round(learnt.learnt_interval_days)::bigint
    end as rebuy_interval_days,
    case
        when products.rebuy_interval_days > 0 then 'declared'
        when learnt.rebuys_seen >= $rebuy_min_observations then 'learnt'
        else 'none'
    end as interval_source
from staging.stg_products as products
left join learnt using (product_id)
