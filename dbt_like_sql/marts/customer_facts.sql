-- description: One row per known customer as of the date: purchases, spend, first order, rhythm, last site activity, the address normalised for matching, and whether letters may reach them (intermediate.letter_recipients: consent and no unsubscribe, bounce or spam report by any customer at the address).
-- owners: team:data
-- unique_key: customer_id
with orders_per_customer as (
    select
        customer_id,
        count(*) filter (where is_purchase) as orders_count,
        count(*) filter (where status = 'refunded') as refunded_orders_count,
        count(*) filter (where status = 'cancelled') as cancelled_orders_count,
        sum(total_amount) filter (where is_purchase) as total_spent,
        arg_min(order_id, (ordered_at, order_id)) filter (where is_purchase) as first_order_id
    from staging.stg_orders
    group by customer_id
),
first_orders as (
    select
        orders.customer_id,
        orders.order_id as first_order_id,
        orders.ordered_at as first_ordered_at,
        orders.total_amount as first_order_total,
        coalesce(sum(items.quantity), 0) as first_order_items
    from staging.stg_orders as orders
    join orders_per_customer using (customer_id)
    left join staging.stg_order_items as items on items.order_id = orders.order_id
    where orders.order_id = orders_per_customer.first_order_id
    group by all
),
latest_purchase_day as (
    select *
    from intermediate.purchase_days
    qualify row_number() over (partition by customer_id order by purchase_on desc) = 1
),
first_purchase_day as (
    select customer_id, purchase_on as first_purchase_on
    from intermediate.purchase_days
    where purchase_number = 1
),
suppressions as (
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
    customers.customer_id,
    customers.email,
    customers.first_name,
    customers.registered_at,
    customers.registered_on,
    customers.birthday,
    customers.marketing_consent,
    recipients.address,
    suppressions.suppressed_at,
    suppressions.suppression_reasons,
    recipients.not_receiving_reason,
    coalesce(recipients.may_receive_letters, false) as can_receive_letters,
    coalesce(orders_per_customer.orders_count, 0) as orders_count,
    coalesce(latest_purchase_day.purchase_number, 0) as purchase_days_count,
    coalesce(orders_per_customer.refunded_orders_count, 0) as refunded_orders_count,
    coalesce(orders_per_customer.cancelled_orders_count, 0) as cancelled_orders_count,
    coalesce(orders_per_customer.total_spent, 0) as total_spent,
    orders_per_customer.total_spent / nullif(orders_per_customer.orders_count, 0) as average_order_value,
    first_orders.first_order_id,
    first_orders.first_ordered_at,
    first_orders.first_order_total,
    first_orders.first_order_items,
    first_purchase_day.first_purchase_on,
    first_purchase_day.first_purchase_on - customers.registered_on as days_to_first_purchase,
    latest_purchase_day.purchase_on as last_purchase_on,
    $as_of::date - latest_purchase_day.purchase_on as days_since_last_purchase,
    latest_purchase_day.typical_gap_days,
    latest_purchase_day.has_rhythm,
    latest_purchase_day.departing_after_days,
    latest_purchase_day.purchase_on + latest_purchase_day.departing_after_days as departing_from,
    latest_purchase_day.expected_next_purchase_on,
    latest_purchase_day.last_return_on,
    site_activity.last_site_activity_at,
    site_activity.last_cart_at
from staging.stg_customers as customers
left join orders_per_customer using (customer_id)
left join first_orders using (customer_id)
left join latest_purchase_day using (customer_id)
left join first_purchase_day using (customer_id)
left join suppressions using (customer_id)
left join intermediate.letter_recipients as recipients using (customer_id)
left join site_activity using (customer_id)
