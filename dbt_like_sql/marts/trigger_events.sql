-- description: The trigger events that fire in the due window (the as-of day and the catch-up days before it), each with a deterministic instance and letter key so a trigger plans its letter once; eligibility (still a visitor, not bought again, departing, ...) is judged as of the date.
-- owners: team:data
-- unique_key: letter_key
-- count_by: trigger
with settings as (
    select
        $as_of::date as as_of,
        -- Cart and browse triggers only need the site events of the last few days: the cost follows
        -- new data, not the whole history.
        $as_of::date - $letter_catch_up_days::integer
            - (greatest($abandoned_cart_window_hours::integer, $abandoned_browse_window_hours::integer) // 24 + 1)
            as site_events_from,
        -- What the data knows of: the end of the as-of day, or earlier when the day is still
        -- landing (the hourly build). A cart's window must have closed by then, or an order placed
        -- after the last event we have seen would still count.
        least(
            ($as_of::date + 1)::timestamp,
            greatest(
                (select max(occurred_at) from staging.stg_interactions),
                (select max(ordered_at) from staging.stg_orders),
                (select max(registered_at) from staging.stg_customers)
            )
        ) as known_until
),
lifecycle as (
    select * from marts.customer_lifecycle
),
facts as (
    select * from marts.customer_facts
),
welcome as (
    select
        series.trigger,
        'welcome' as template_name,
        2 as priority,
        facts.customer_id,
        strftime(facts.registered_on, '%Y-%m-%d') as instance,
        facts.registered_on + series.step as due_on,
        case when series.step = 0 then facts.registered_at else (facts.registered_on + series.step)::timestamp end as fired_at,
        -- the welcome bonus is for the first purchase: a customer who bought on day 0 gets none
        case when lifecycle.stage = 'visitor' then $welcome_bonus_amount::double end as bonus_amount,
        case when lifecycle.stage = 'visitor' then facts.registered_on + $welcome_bonus_valid_days::integer end
            as bonus_expires_on,
        []::varchar[] as products,
        json_object('series_step', series.step, 'registered_on', strftime(facts.registered_on, '%Y-%m-%d')) as details
    from facts
    join lifecycle using (customer_id)
    cross join (values ('welcome_day0', 0), ('welcome_day2', 2)) as series(trigger, step)
    where series.step = 0 or lifecycle.stage = 'visitor'
),
welcome_bonus_expiring as (
    select
        'welcome_bonus_expiring' as trigger,
        'welcome_bonus_expiring' as template_name,
        1 as priority,
        facts.customer_id,
        strftime(facts.registered_on, '%Y-%m-%d') as instance,
        facts.registered_on + ($welcome_bonus_valid_days::integer - 1) as due_on,
        (facts.registered_on + ($welcome_bonus_valid_days::integer - 1))::timestamp as fired_at,
        $welcome_bonus_amount::double as bonus_amount,
        facts.registered_on + $welcome_bonus_valid_days::integer as bonus_expires_on,
        []::varchar[] as products,
        json_object(
            'registered_on', strftime(facts.registered_on, '%Y-%m-%d'),
            'days_left', facts.registered_on + $welcome_bonus_valid_days::integer - (select as_of from settings)
        ) as details
    from facts
    join lifecycle using (customer_id)
    where lifecycle.stage = 'visitor'
),
cart_events as (
    select customer_id, occurred_at, occurred_on, event_type, product_id
    from staging.stg_interactions
    where customer_id is not null
      and event_type in ('add_to_cart', 'remove_from_cart', 'checkout_started')
      and occurred_on >= (select site_events_from from settings)
),
cart_days as (
    select
        customer_id,
        occurred_on as cart_on,
        min(occurred_at) filter (where event_type <> 'remove_from_cart') as cart_started_at,
        max(occurred_at) filter (where event_type <> 'remove_from_cart') as last_cart_at,
        bool_or(event_type = 'checkout_started') as checkout_started
    from cart_events
    group by customer_id, occurred_on
    having last_cart_at is not null
),
abandoned_carts as (
    select
        cart_days.*,
        cart_days.last_cart_at + to_hours($abandoned_cart_window_hours::integer) as window_closes_at
    from cart_days
    where not exists (
        select 1
        from staging.stg_orders as orders
        where orders.customer_id = cart_days.customer_id
          and orders.is_purchase
          and orders.ordered_at >= cart_days.cart_started_at
          and orders.ordered_at <= cart_days.last_cart_at + to_hours($abandoned_cart_window_hours::integer)
    )
),
cart_products as (
    select customer_id, occurred_on as cart_on, product_id
    from cart_events
    where product_id is not null
    group by all
    having count(*) filter (where event_type = 'add_to_cart') > count(*) filter (where event_type = 'remove_from_cart')
),
abandoned_cart as (
    select
        'abandoned_cart' as trigger,
        'abandoned_cart' as template_name,
        1 as priority,
        abandoned_carts.customer_id,
        strftime(abandoned_carts.cart_on, '%Y-%m-%d') as instance,
        abandoned_carts.window_closes_at::date as due_on,
        abandoned_carts.window_closes_at as fired_at,
        null::double as bonus_amount,
        null::date as bonus_expires_on,
        coalesce(
            (select list(cart_products.product_id order by cart_products.product_id)
             from cart_products
             where cart_products.customer_id = abandoned_carts.customer_id
               and cart_products.cart_on = abandoned_carts.cart_on),
            []::varchar[]
        ) as products,
        json_object(
            'cart_started_at', strftime(abandoned_carts.cart_started_at, '%Y-%m-%dT%H:%M:%S'),
            'checkout_started', abandoned_carts.checkout_started
        ) as details
    from abandoned_carts
    where abandoned_carts.window_closes_at <= (select known_until from settings)
),
view_days as (
    select
        customer_id,
        occurred_on as viewed_on,
        min(occurred_at) as first_view_at,
        max(occurred_at) as last_view_at,
        list(product_id order by occurred_at desc) as viewed_products
    from staging.stg_interactions
    where customer_id is not null
      and event_type = 'product_view'
      and product_id is not null
      and occurred_on >= (select site_events_from from settings)
    group by customer_id, occurred_on
),
abandoned_browse as (
    select
        'abandoned_browse' as trigger,
        'abandoned_browse' as template_name,
        3 as priority,
        view_days.customer_id,
        strftime(view_days.viewed_on, '%Y-%m-%d') as instance,
        (view_days.last_view_at + to_hours($abandoned_browse_window_hours::integer))::date as due_on,
        view_days.last_view_at + to_hours($abandoned_browse_window_hours::integer) as fired_at,
        null::double as bonus_amount,
        null::date as bonus_expires_on,
        list_distinct(view_days.viewed_products)[1:3] as products,
        json_object('viewed_at', strftime(view_days.last_view_at, '%Y-%m-%dT%H:%M:%S')) as details
    from view_days
    where view_days.last_view_at + to_hours($abandoned_browse_window_hours::integer) <= (select known_until from settings)
      and not exists (
          select 1
          from cart_events
          where cart_events.customer_id = view_days.customer_id
            and cart_events.event_type in ('add_to_cart', 'checkout_started')
            and cart_events.occurred_at >= view_days.first_view_at
            and cart_events.occurred_at <= view_days.last_view_at + to_hours($abandoned_browse_window_hours::integer)
      )
      and not exists (
          select 1
          from staging.stg_orders as orders
          where orders.customer_id = view_days.customer_id
            and orders.is_purchase
            and orders.ordered_at >= view_days.first_view_at
            and orders.ordered_at <= view_days.last_view_at + to_hours($abandoned_browse_window_hours::integer)
      )
),
first_order_products as (
    -- only the new buyers' first orders: new_buyer_series reads no other
    select facts.customer_id, list(distinct items.product_id order by items.product_id) as products
    from facts
    semi join lifecycle on lifecycle.customer_id = facts.customer_id and lifecycle.stage = 'new_buyer'
    join staging.stg_order_items as items on items.order_id = facts.first_order_id
    group by facts.customer_id
),
new_buyer_series as (
    select
        series.trigger,
        series.trigger as template_name,
        series.priority,
        facts.customer_id,
        facts.first_order_id as instance,
        facts.first_purchase_on + series.step as due_on,
        (facts.first_purchase_on + series.step)::timestamp as fired_at,
        case when series.trigger = 'post_purchase' then $post_purchase_bonus_amount::double end as bonus_amount,
        case when series.trigger = 'post_purchase' then facts.first_purchase_on + series.step + $bonus_valid_days::integer end
            as bonus_expires_on,
        coalesce(first_order_products.products, []::varchar[]) as products,
        case
            when series.trigger = 'post_purchase' then json_object(
                'order_id', facts.first_order_id,
                'order_total', facts.first_order_total,
                'ordered_on', strftime(facts.first_purchase_on, '%Y-%m-%d')
            )
            else json_object('order_id', facts.first_order_id, 'ordered_on', strftime(facts.first_purchase_on, '%Y-%m-%d'))
        end as details
    from facts
    join lifecycle using (customer_id)
    left join first_order_products using (customer_id)
    cross join (values ('post_purchase', 1, 2), ('cross_sell', 7, 3)) as series(trigger, step, priority)
    where lifecycle.stage = 'new_buyer'
),
last_product_purchases as (
    select customer_id, product_id, max(ordered_on) as last_bought_on
    from staging.stg_order_items
    where is_purchase
    group by customer_id, product_id
),
replenishment as (
    select
        'replenishment' as trigger,
        'replenishment' as template_name,
        2 as priority,
        purchases.customer_id,
        purchases.product_id || '@' || strftime(purchases.last_bought_on, '%Y-%m-%d') as instance,
        purchases.last_bought_on + intervals.rebuy_interval_days::integer as due_on,
        (purchases.last_bought_on + intervals.rebuy_interval_days::integer)::timestamp as fired_at,
        null::double as bonus_amount,
        null::date as bonus_expires_on,
        [purchases.product_id] as products,
        json_object(
            'last_bought_on', strftime(purchases.last_bought_on, '%Y-%m-%d'),
            'rebuy_interval_days', intervals.rebuy_interval_days
        ) as details
    from last_product_purchases as purchases
    join marts.product_rebuy_interval as intervals using (product_id)
    where intervals.rebuy_interval_days is not null
),
we_miss_you as (
    select
        'we_miss_you' as trigger,
        'we_miss_you' as template_name,
        2 as priority,
        lifecycle.customer_id,
        strftime(lifecycle.expected_next_purchase_on, '%Y-%m-%d') as instance,
        lifecycle.expected_next_purchase_on + 1 as due_on,
        (lifecycle.expected_next_purchase_on + 1)::timestamp as fired_at,
        null::double as bonus_amount,
        null::date as bonus_expires_on,
        []::varchar[] as products,
        json_object(
            'expected_next_purchase_on', strftime(lifecycle.expected_next_purchase_on, '%Y-%m-%d'),
            'last_purchase_on', strftime(lifecycle.last_purchase_on, '%Y-%m-%d'),
            'orders_count', lifecycle.orders_count
        ) as details
    from lifecycle
    where lifecycle.stage = 'active' and lifecycle.expected_next_purchase_on is not null
),
winback as (
    select
        'winback_' || tiers.days as trigger,
        'winback' as template_name,
        2 as priority,
        lifecycle.customer_id,
        strftime(lifecycle.last_purchase_on, '%Y-%m-%d') as instance,
        lifecycle.last_purchase_on + tiers.days as due_on,
        (lifecycle.last_purchase_on + tiers.days)::timestamp as fired_at,
        tiers.bonus_amount,
        lifecycle.last_purchase_on + tiers.days + $bonus_valid_days::integer as bonus_expires_on,
        []::varchar[] as products,
        json_object(
            'days_since_last_purchase', tiers.days,
            'last_purchase_on', strftime(lifecycle.last_purchase_on, '%Y-%m-%d'),
            'orders_count', lifecycle.orders_count
        ) as details
    from lifecycle
    cross join (
        values
            (90, $winback_90_bonus_amount::double),
            (180, $winback_180_bonus_amount::double),
            (360, $winback_360_bonus_amount::double)
    ) as tiers(days, bonus_amount)
    where lifecycle.stage = 'departing'
),
welcome_back as (
    select
        'welcome_back_day' || series.step as trigger,
        'welcome_back' as template_name,
        2 as priority,
        facts.customer_id,
        strftime(facts.last_return_on, '%Y-%m-%d') as instance,
        facts.last_return_on + series.step as due_on,
        (facts.last_return_on + series.step)::timestamp as fired_at,
        case when series.step = 1 then $welcome_back_bonus_amount::double end as bonus_amount,
        case when series.step = 1 then facts.last_return_on + series.step + $bonus_valid_days::integer end as bonus_expires_on,
        []::varchar[] as products,
        json_object('series_step', series.step, 'returned_on', strftime(facts.last_return_on, '%Y-%m-%d')) as details
    from facts
    join lifecycle using (customer_id)
    cross join (values (1), (14)) as series(step)
    where lifecycle.stage = 'returned'
),
anniversary_candidates as (
    select
        facts.customer_id,
        facts.registered_on,
        year(settings.as_of) - year(facts.registered_on) - years_back.offset_years as years_since_registration
    from facts
    cross join settings
    -- next year's too: an occasion on 1 January is due on 30 December (see anniversary)
    cross join (values (-1), (0), (1)) as years_back(offset_years)
),
-- Birthdays and anniversaries fall on the customer's local date (deliver_on): they are due two UTC
-- days before it, so the push of that plan day (hourly from 00:15 UTC, or the daily run the next
-- morning) can schedule them for the local send hour on the date in every time zone from UTC+14 to
-- UTC-12 within SendGrid's 72 h (docs/activation.md, "Send time").
anniversary as (
    select
        'anniversary' as trigger,
        'anniversary' as template_name,
        4 as priority,
        customer_id,
        (year(registered_on) + years_since_registration)::varchar as instance,
        (registered_on + to_years(years_since_registration::integer))::date - 2 as due_on,
        (registered_on + to_years(years_since_registration::integer))::date as deliver_on,
        (registered_on + to_years(years_since_registration::integer))::timestamp as fired_at,
        null::double as bonus_amount,
        null::date as bonus_expires_on,
        []::varchar[] as products,
        json_object(
            'years_since_registration', years_since_registration,
            'registered_on', strftime(registered_on, '%Y-%m-%d')
        ) as details
    from anniversary_candidates
    where years_since_registration >= 1
),
numbered_orders as (
    select
        customer_id,
        order_id,
        ordered_on,
        ordered_at,
        row_number() over (partition by customer_id order by ordered_at, order_id) as order_number
    from staging.stg_orders
    where is_purchase
),
purchase_jubilee as (
    select
        'purchase_jubilee' as trigger,
        'purchase_jubilee' as template_name,
        3 as priority,
        customer_id,
        order_number::varchar as instance,
        ordered_on as due_on,
        ordered_at as fired_at,
        null::double as bonus_amount,
        null::date as bonus_expires_on,
        []::varchar[] as products,
        json_object('orders_count', order_number) as details
    from numbered_orders
    where order_number in (5, 10, 25, 50, 100)
),
birthday_candidates as (
    select
        facts.customer_id,
        year(settings.as_of) - years_back.offset_years as birthday_year,
        (facts.birthday + to_years((year(settings.as_of) - years_back.offset_years - year(facts.birthday))::integer))::date
            as birthday_on
    from facts
    cross join settings
    cross join (values (-1), (0), (1)) as years_back(offset_years)
    where facts.birthday is not null
),
birthday as (
    select
        'birthday' as trigger,
        'birthday' as template_name,
        3 as priority,
        customer_id,
        birthday_year::varchar as instance,
        birthday_on - 2 as due_on,
        birthday_on as deliver_on,
        birthday_on::timestamp as fired_at,
        $birthday_bonus_amount::double as bonus_amount,
        birthday_on + $bonus_valid_days::integer as bonus_expires_on,
        []::varchar[] as products,
        json_object() as details
    from birthday_candidates
),
-- The active buyers' series (docs/lifecycle_model.md, "Active buyers' series"): every
-- $active_buyers_cadence_days after the last purchase while the customer stays active, a letter whose
-- offer follows the RFM segment as of the date. Anchored on the customer's own last purchase, so the
-- letters of a shop spread over the days instead of going out in one blast.
new_arrivals as (
    select coalesce(list(product_id order by first_landed_on desc, product_id)[1:3], []::varchar[]) as products
    from staging.stg_products
    where first_landed_on > (select as_of from settings) - $new_arrivals_days::integer
),
active_buyer_dues as (
    select
        lifecycle.customer_id,
        lifecycle.rfm_segment,
        lifecycle.last_purchase_on,
        -- the last day on or before the as-of day that is a whole number of cadences after the last purchase
        settings.as_of
            - ((settings.as_of - lifecycle.last_purchase_on) % greatest($active_buyers_cadence_days::integer, 1))::integer
            as due_on
    from lifecycle
    cross join settings
    where lifecycle.stage = 'active' and $active_buyers_cadence_days::integer > 0
),
active_buyers as (
    select
        'active_buyers' as trigger,
        'active_buyers' as template_name,
        4 as priority,
        dues.customer_id,
        strftime(dues.due_on, '%Y-%m-%d') as instance,
        dues.due_on,
        dues.due_on::timestamp as fired_at,
        case
            when offers.offer = 'early_access' then $active_champions_bonus_amount::double
            when offers.offer = 'sale_invitation' then $active_at_risk_bonus_amount::double
        end as bonus_amount,
        case when offers.offer <> 'new_arrivals' then dues.due_on + $bonus_valid_days::integer end as bonus_expires_on,
        case when offers.offer = 'sale_invitation' then []::varchar[] else (select products from new_arrivals) end
            as products,
        json_object(
            'rfm_segment', dues.rfm_segment,
            'offer', offers.offer,
            'early_access', (offers.offer = 'early_access'),
            'sale_invitation', (offers.offer = 'sale_invitation'),
            'last_purchase_on', strftime(dues.last_purchase_on, '%Y-%m-%d')
        ) as details
    from active_buyer_dues as dues
    join (
        values
            ('champions', 'early_access'),
            ('loyal', 'new_arrivals'),
            ('potential_loyalists', 'new_arrivals'),
            ('at_risk', 'sale_invitation'),
            ('cannot_lose', 'sale_invitation')
    ) as offers(rfm_segment, offer) using (rfm_segment)
    where dues.due_on > dues.last_purchase_on
),
all_triggers as (
    select * from welcome
    union all by name select * from welcome_bonus_expiring
    union all by name select * from abandoned_cart
    union all by name select * from abandoned_browse
    union all by name select * from new_buyer_series
    union all by name select * from replenishment
    union all by name select * from we_miss_you
    union all by name select * from winback
    union all by name select * from welcome_back
    union all by name select * from anniversary
    union all by name select * from purchase_jubilee
    union all by name select * from birthday
    union all by name select * from active_buyers
)
select
    all_triggers.trigger || ':' || all_triggers.customer_id || ':' || all_triggers.instance as letter_key,
    all_triggers.trigger,
    all_triggers.template_name,
    all_triggers.priority,
    all_triggers.customer_id,
    all_triggers.instance,
    all_triggers.fired_at,
    all_triggers.due_on,
    -- the customer's local day the letter should arrive on (birthday, anniversary); null: the next send hour
    all_triggers.deliver_on,
    all_triggers.bonus_amount,
    all_triggers.bonus_expires_on,
    all_triggers.products,
    all_triggers.details::varchar as details
from all_triggers
-- the due window as constants, not the settings CTE's columns: DuckDB then filters each trigger's rows before
-- it builds their details (a comparison with another relation's column is a join, applied after the union)
where all_triggers.due_on > $as_of::date - $letter_catch_up_days::integer
  and all_triggers.due_on <= $as_of::date
