-- description: The global control group, one row per known customer: a stable share of customers (control_group_share, default 5%) that receives no marketing letter, chosen by a hash of the customer id and control_group_salt (md5, first 8 hex digits, modulo 10000 buckets), so membership does not change from day to day and a new salt draws a new group. letters_planned marks their letters held out, audiences leaves them out, and the lift report compares them with recipients.
-- owners: team:data
-- unique_key: customer_id
-- count_by: in_global_control_group
select
    customer_id,
    ('0x' || left(md5(customer_id || ':' || $control_group_salt), 8))::ubigint % 10000 as control_group_bucket,
    control_group_bucket < round($control_group_share * 10000) as in_global_control_group
from staging.stg_customers
