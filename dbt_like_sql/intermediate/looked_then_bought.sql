-- description: Per customer and product they first carted (viewed) on a day without buying it that day, at least recommendations_interest_days before the as-of day: whether they bought it within the next recommendations_interest_days (`bought_later`). The site's recommendations learn a cart's and a view's chance from it (marts.site_recommendations, `later_purchase`). Built incrementally by customer, a customer's rows depending only on their own views, carts and purchases: a daily build recomputes the customers with events or order lines landed since the last one and those whose look becomes recommendations_interest_days old (`as_of_crosses`), not a year of events.
-- owners: team:data
-- unique_key: customer_id, product_id, kind
-- materialization: incremental
-- incremental_key: customer_id
-- as_of_crosses: looks.judged_from
-- count_by: kind, bought_later
with looks as (
    -- a look is judged once recommendations_interest_days have passed: from judged_from on
    select customer_id, product_id, occurred_on, case when event_type = 'add_to_cart' then 'carted' else 'viewed' end as kind,
        occurred_on + $recommendations_interest_days::integer as judged_from
    from staging.stg_interactions
    where event_type in ('product_view', 'add_to_cart') and customer_id is not null and product_id is not null
),
purchases as (
    -- (order lines name catalogue products: the ingest quarantines a line of an unknown product)
    select customer_id, product_id, ordered_on
    from staging.stg_order_items
    where is_purchase
),
looked as (
    select customer_id, product_id, kind, min(occurred_on) as first_on
    from looks
    group by all
)
select looked.customer_id, looked.product_id, looked.kind, any_value(later.ordered_on) is not null as bought_later
from looked
left join purchases as later
    on later.customer_id = looked.customer_id and later.product_id = looked.product_id
    and later.ordered_on > looked.first_on and later.ordered_on <= looked.first_on + $recommendations_interest_days
anti join purchases as same_day
    on same_day.customer_id = looked.customer_id and same_day.product_id = looked.product_id
    and same_day.ordered_on = looked.first_on
where looked.first_on <= $as_of::date - $recommendations_interest_days
group by all
