-- description: Exactly one row per known customer with their lifecycle stage as of the date (visitor, new_buyer, active, departing, returned), recency segment, RFM scores and segment, the lapse model's P(buy within H days) and expected next purchase, and the departing rule in force (rules: docs/lifecycle_model.md).
-- owners: team:data
-- unique_key: customer_id
-- count_by: stage, recency_segment, rfm_segment, departing_rule
-- count_table: stage, recency_segment
-- count_table: rfm_segment
with history_stage as (
    select customer_id, stage, started_on as stage_started_on, previous_stage
    from intermediate.stage_transitions
    qualify row_number() over (partition by customer_id order by started_on desc) = 1
),
-- Departing comes from the lapse model (or, in a small or young shop, its fixed-days fallback);
-- returned, new_buyer and active keep their rules (docs/lifecycle_model.md section 2).
current_stage as (
    select
        facts.customer_id,
        case
            when facts.last_purchase_on is null then 'visitor'
            when lapse.is_departing then 'departing'
            when $as_of::date - facts.last_return_on < $returned_window_days then 'returned'
            when facts.purchase_days_count = 1 then 'new_buyer'
            else 'active'
        end as stage,
        lapse.departing_rule,
        lapse.p_buy_within_horizon,
        lapse.lapse_score,
        coalesce(lapse.expected_next_purchase_on, facts.expected_next_purchase_on) as expected_next_purchase_on
    from marts.customer_facts as facts
    left join marts.customer_lapse_scores as lapse using (customer_id)
),
scored as (
    select
        facts.*,
        case
            when facts.last_purchase_on is null then null
            when facts.days_since_last_purchase < 90 then '0_90'
            when facts.days_since_last_purchase < 180 then '90_180'
            when facts.days_since_last_purchase < 360 then '180_360'
            else '360_plus'
        end as recency_segment,
        case
            when facts.last_purchase_on is null then null
            when facts.days_since_last_purchase < 30 then 5
            when facts.days_since_last_purchase < 90 then 4
            when facts.days_since_last_purchase < 180 then 3
            when facts.days_since_last_purchase < 360 then 2
            else 1
        end as recency_score,
        case
            when facts.orders_count = 0 then null
            when facts.orders_count = 1 then 1
            when facts.orders_count = 2 then 2
            when facts.orders_count = 3 then 3
            when facts.orders_count <= 5 then 4
            else 5
        end as frequency_score
    from marts.customer_facts as facts
),
monetary as (
    select
        customer_id,
        1 + floor(4.9999 * percent_rank() over (order by average_order_value))::integer as monetary_score
    from scored
    where orders_count > 0
)
select
    scored.customer_id,
    current_stage.stage,
    -- The stage history (intermediate.stage_transitions) dates the stage when it agrees with the model.
    case when history_stage.stage = current_stage.stage then history_stage.stage_started_on end as stage_started_on,
    case
        when history_stage.stage = current_stage.stage then history_stage.previous_stage else history_stage.stage
    end as previous_stage,
    scored.recency_segment,
    scored.recency_score,
    scored.frequency_score,
    monetary.monetary_score,
    case
        when scored.orders_count = 0 then null
        when scored.recency_score >= 4 and scored.frequency_score >= 4 then 'champions'
        when scored.recency_score >= 3 and scored.frequency_score >= 3 then 'loyal'
        when scored.recency_score <= 2 and scored.frequency_score = 5 then 'cannot_lose'
        when scored.recency_score <= 2 and scored.frequency_score >= 3 then 'at_risk'
        when scored.recency_score >= 4 and scored.frequency_score = 1 then 'new_customers'
        when scored.recency_score >= 3 and scored.frequency_score = 2 then 'potential_loyalists'
        when scored.recency_score = 3 and scored.frequency_score = 1 then 'promising'
        when scored.recency_score = 2 then 'about_to_sleep'
        when scored.frequency_score = 2 then 'hibernating'
        else 'lost'
    end as rfm_segment,
    current_stage.expected_next_purchase_on,
    coalesce($as_of::date > current_stage.expected_next_purchase_on, false) as is_overdue,
    current_stage.p_buy_within_horizon,
    current_stage.lapse_score,
    current_stage.departing_rule,
    scored.departing_from,
    scored.last_purchase_on,
    scored.days_since_last_purchase,
    scored.orders_count,
    scored.total_spent,
    scored.average_order_value,
    scored.registered_on,
    scored.email,
    scored.first_name,
    scored.can_receive_letters,
    $as_of::date as as_of
from scored
join current_stage using (customer_id)
join history_stage using (customer_id)
left join monetary using (customer_id)
