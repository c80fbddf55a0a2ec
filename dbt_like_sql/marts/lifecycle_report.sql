-- description: The brief's figures read back from the shop's own data as of the date (first purchase on the registration day and in the first week, one-time buyers, repeat rate by first-order size, 3-month return of the 4-6-month lapsed, retention of returned vs new buyers), the buyer-journey funnel and the stage counts, each next to the brief's figure.
-- owners: team:data
-- unique_key: metric
-- metrics: metric, value
-- preview_rows: 40
with facts as (
    select * from marts.customer_facts
),
buyers as (
    select * from facts where orders_count > 0
),
figures as (
    select
        count(*) filter (where days_to_first_purchase <= 0) / nullif(count(*), 0) as same_day,
        count(*) filter (where days_to_first_purchase between 1 and 7) / nullif(count(*), 0) as first_week,
        count(*) filter (where orders_count = 1) / nullif(count(*), 0) as one_time,
        count(*) filter (where first_order_items = 1 and orders_count >= 2)
            / nullif(count(*) filter (where first_order_items = 1), 0) as repeat_one_item,
        count(*) filter (where first_order_items >= 6 and orders_count >= 2)
            / nullif(count(*) filter (where first_order_items >= 6), 0) as repeat_six_plus
    from buyers
),
-- Lapsed 4-6 months as of 90 days ago: did they buy within the following 3 months?
lapsed as (
    select
        customer_id,
        max(purchase_on) filter (where purchase_on <= $as_of::date - 90) as last_before,
        bool_or(purchase_on > $as_of::date - 90) as bought_since
    from intermediate.purchase_days
    group by customer_id
),
lapsed_return as (
    select count(*) filter (where bought_since) / nullif(count(*), 0) as rate, count(*) as customers
    from lapsed
    where ($as_of::date - 90) - last_before between 120 and 182
),
-- Did a customer buy again within 180 days of their first purchase / of their return?
followed as (
    select
        purchase_number,
        is_return,
        lead(purchase_on) over (partition by customer_id order by purchase_on) - purchase_on <= 180 as bought_again
    from intermediate.purchase_days
    where true
    qualify purchase_on <= $as_of::date - 180
),
retention as (
    select
        count(*) filter (where is_return and bought_again) / nullif(count(*) filter (where is_return), 0) as returned,
        count(*) filter (where purchase_number = 1 and bought_again)
            / nullif(count(*) filter (where purchase_number = 1), 0) as new_buyers
    from followed
),
site_people as (
    select
        coalesce(customer_id, 'anonymous:' || anonymous_id) as person,
        bool_or(event_type in ('product_view', 'search', 'click')) as considered,
        bool_or(event_type in ('add_to_cart', 'checkout_started')) as decided
    from staging.stg_interactions
    where coalesce(customer_id, anonymous_id) is not null
    group by all
),
people as (
    select
        coalesce(site_people.person, facts.customer_id) as person,
        coalesce(site_people.considered, false) as considered,
        coalesce(site_people.decided, false) or coalesce(facts.orders_count, 0) > 0 as decided,
        coalesce(facts.orders_count, 0) >= 2 as loyal
    from site_people
    full join facts on facts.customer_id = site_people.person
),
funnel as (
    select
        count(*) as aware,
        count(*) filter (where considered or decided or loyal) as considering,
        count(*) filter (where decided or loyal) as deciding,
        count(*) filter (where loyal) as loyal
    from people
),
stages as (
    select stage, count(*) as customers from marts.customer_lifecycle group by stage
),
report(section, metric, value, brief_value, meaning) as (
    select 'brief', 'first_purchase_same_day_share', same_day, 0.80, 'first purchases made on the registration day' from figures
    union all
    select 'brief', 'first_purchase_first_week_share', first_week, 0.07, 'first purchases 1-7 days after registration' from figures
    union all
    select 'brief', 'one_time_buyer_share', one_time, 0.50, 'buyers with exactly one order (brief: more than half)' from figures
    union all
    select 'brief', 'repeat_rate_first_order_1_item', repeat_one_item, null, 'buyers whose first order had 1 item who ordered again' from figures
    union all
    select 'brief', 'repeat_rate_first_order_6_plus_items', repeat_six_plus, null, 'buyers whose first order had 6+ items who ordered again' from figures
    union all
    select 'brief', 'repeat_rate_ratio_6_plus_vs_1_item', repeat_six_plus / nullif(repeat_one_item, 0), 2.0, 'how many times likelier 6+ item first orders repeat' from figures
    union all
    select 'brief', 'lapsed_4_6_months_return_rate_3_months', rate, 0.20, 'customers lapsed 4-6 months 90 days ago who bought within those 90 days' from lapsed_return
    union all
    select 'brief', 'returned_retention_180_days', returned, 0.35, 'return purchases followed by another purchase within 180 days' from retention
    union all
    select 'brief', 'new_buyer_retention_180_days', new_buyers, 0.36, 'first purchases followed by another purchase within 180 days' from retention
    union all
    select 'funnel', 'funnel_aware', aware, null, 'people seen: registered customers and identified or anonymous visitors' from funnel
    union all
    select 'funnel', 'funnel_considering', considering, null, 'viewed a product, searched or clicked a letter (or went further)' from funnel
    union all
    select 'funnel', 'funnel_deciding', deciding, null, 'carted, started a checkout or bought' from funnel
    union all
    select 'funnel', 'funnel_loyal', loyal, null, 'bought two or more times' from funnel
    union all
    select 'stages', 'stage_' || stage, customers, null, 'customers in this stage' from stages
    union all
    select 'stages', 'customers_total', count(*), null, 'known customers' from facts
)
select section, metric, round(value::double, 4) as value, brief_value::double as brief_value, meaning, $as_of::date as as_of
from report
