-- description: Per customer with site or suppression events: their last site activity and last cart, and their first unsubscribe, bounce or spam report with every such reason. customer_facts reads these from here rather than aggregating a year of events at every build. Built incrementally by customer, a customer's row depending only on their own events: a daily build recomputes the customers with events landed (or re-ingested, or gone) since the last one.
-- owners: team:data
-- unique_key: customer_id
-- materialization: incremental
-- incremental_key: customer_id
with suppressions as (
    select
        customer_id,
        min(occurred_at) as suppressed_at,
        string_agg(distinct event_type, ',' order by event_type) as suppression_reasons
    from staging.stg_interactions
    where event_type in ('unsubscribe', 'bounce', 'spam_report') and customer_id is not null
    group by customer_id
),
site_activity as (
    select
        customer_id,
        max(occurred_at) as last_site_activity_at,
        max(occurred_at) filter (where event_type in ('add_to_cart', 'checkout_started')) as last_cart_at
    from staging.stg_interactions
    where customer_id is not null
      and event_type in ('page_view', 'product_view', 'search', 'add_to_cart', 'remove_from_cart', 'checkout_started')
    group by customer_id
)
select
    customer_id,
    site_activity.last_site_activity_at,
    site_activity.last_cart_at,
    suppressions.suppressed_at,
    suppressions.suppression_reasons
from site_activity
full join suppressions using (customer_id)
