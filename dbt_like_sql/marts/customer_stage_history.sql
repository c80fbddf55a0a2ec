-- description: Every stage transition of every customer with the day it started, kept incrementally: a build writes only what changed (new transitions added, transitions the data no longer supports removed, e.g. after a late refund or a corrected export of a past day), so rebuilding the same day changes nothing and recorded_as_of keeps the build that first recorded a transition. Run config full_refresh: true rebuilds it from scratch. A stage lasts until the customer's next transition. A day's transitions are recorded once the day is complete (a later landing day exists, or the day is before the as-of day), so an hourly build of a day still landing never records a stage the rest of the day may change.
-- owners: team:data
-- materialization: incremental
-- unique_key: customer_id, started_on
-- merge_exclude_columns: recorded_as_of
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
)
select
    transitions.customer_id,
    transitions.started_on,
    transitions.stage,
    transitions.previous_stage,
    $as_of::date as recorded_as_of
from intermediate.stage_transitions as transitions
cross join landing
where transitions.started_on < $as_of::date
   or landing.latest_landing_day > $as_of::date
