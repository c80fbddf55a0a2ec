-- description: The one rule "may this customer receive a letter", one row per known customer: the address normalised for matching (trimmed, lower-cased), and may_receive_letters, true only when every customer at that address has marketing consent and none unsubscribed (globally or from the letters' unsubscribe group), bounced or reported spam (one inbox, one person: a withdrawal by any customer at an address protects the address). customer_facts, the consent audits and the push (over the freshest rows, right before sending) all read this definition.
-- owners: team:data
-- unique_key: customer_id
-- count_by: not_receiving_reason
with customers as (
    select
        customer_id,
        nullif(lower(trim(email)), '') as address,
        marketing_consent
    from staging.stg_customers
),
suppressed_customers as (
    select customer_id, min(event_type) as event_type
    from staging.stg_interactions
    where event_type in ('unsubscribe', 'group_unsubscribe', 'bounce', 'spam_report') and customer_id is not null
    group by customer_id
),
own_reasons as (
    select
        customers.customer_id,
        customers.address,
        case
            when customers.address is null then 'no_address'
            when customers.marketing_consent is distinct from true then 'no_consent'
            when suppressed_customers.customer_id is not null then 'interaction_' || suppressed_customers.event_type
        end as own_reason
    from customers
    left join suppressed_customers using (customer_id)
),
reasons as (
    select
        customer_id,
        address,
        coalesce(
            own_reason,
            -- another customer at the same address withdrew consent or was suppressed
            'address_' || min(own_reason) over (partition by address)
        ) as not_receiving_reason
    from own_reasons
)
select customer_id, address, not_receiving_reason, not_receiving_reason is null as may_receive_letters
from reasons
