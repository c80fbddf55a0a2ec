-- description: One row per customer and contact list (a list per stage, recency segment and RFM segment, plus the monthly newsletter), with the custom fields synced to the contact; only customers with consent who did not unsubscribe, bounce or report spam, and (control_group_leaves_audiences, default on) not in the global control group.
-- owners: team:data
-- unique_key: customer_id, list_name
-- count_by: list_name
-- count_table: list_name
with members as (
    select lifecycle.*
    from marts.customer_lifecycle as lifecycle
    left join intermediate.control_groups as control using (customer_id)
    -- the global control group gets no newsletter either, unless the shop turns that off
    where lifecycle.can_receive_letters
      and not coalesce(control.in_global_control_group and $control_group_leaves_audiences, false)
),
memberships as (
    select customer_id, 'stage_' || stage as list_name, 'stage' as list_kind from members
    union all
    select customer_id, 'recency_' || recency_segment, 'recency' from members where recency_segment is not null
    union all
    select customer_id, 'rfm_' || rfm_segment, 'rfm' from members where rfm_segment is not null
    union all
    select customer_id, 'newsletter', 'newsletter' from members
)
select
    members.customer_id,
    members.email,
    members.first_name,
    memberships.list_name,
    memberships.list_kind,
    members.stage,
    members.recency_segment,
    members.rfm_segment,
    members.expected_next_purchase_on,
    members.last_purchase_on,
    members.orders_count::bigint as orders_count
from memberships
join members using (customer_id)
