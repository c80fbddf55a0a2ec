-- description: Every stage transition of every customer with the day it started, appended incrementally: a build adds only transitions not recorded yet, so rebuilding the same day adds nothing. A stage lasts until the customer's next transition.
-- owners: team:data
-- materialization: incremental
-- unique_key: customer_id, started_on
-- count_by: stage
select
    customer_id,
    started_on,
    stage,
    previous_stage,
    $as_of::date as recorded_as_of
from intermediate.stage_transitions
