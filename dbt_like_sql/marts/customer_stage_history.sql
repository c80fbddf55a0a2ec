-- description: Every stage transition of every customer with the day it started, kept incrementally: a build writes only what changed (new transitions added, transitions the data no longer supports removed, e.g. after a late refund or a corrected export of a past day), so rebuilding the same day changes nothing and recorded_as_of keeps the build that first recorded a transition. Run config full_refresh: true rebuilds it from scratch. A stage lasts until the customer's next transition. A day's transitions are recorded once the day is complete (a later landing day exists, or the day is before the as-of day), so an hourly build of a day still landing never records a stage the rest of the day may change. Built by customer_id: a build merges only the customers stage_transitions recomputed since the last one and those with a transition between the previous and the new as-of day (the latest landing day decides only the as-of day's transitions).
-- owners: team:data
-- materialization: incremental
-- unique_key: customer_id, started_on
-- merge_exclude_columns: recorded_as_of
-- incremental_key: customer_id
-- as_of_crosses: transitions.started_on
-- read_whole: raw.customers, raw.orders, raw.interactions
-- count_by: stage
with landing as (
    select max(latest_landing_day) as latest_landing_day
    from (
        select max(_landing_date) as latest_landing_day from raw.customers
        union all
        select max(_landing_date) from raw.orders
        union all
        select max(_landing_date) from raw.interactions
    ) as per_entity
),
transitions as (
    select customer_id, started_on, stage, previous_stage from intermediate.stage_transitions
)
select
    transitions.customer_id,
    transitions.started_on,
    transitions.stage,
    transitions.previous_stage,
    $as_of::date as recorded_as_of
from transitions
cross join landing
where transitions.started_on < $as_of::date
   or landing.latest_landing_day > $as_of::date
