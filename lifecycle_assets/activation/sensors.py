"""Start the SendGrid push when a new build of the planned letters lands, once per build.

A build is pushed only when the audits on what the push reads (marts.letters_planned and
marts.audiences) let it through: Dagster's `blocking=True` skips the downstream assets of the same
run, but a materialisation that failed its audit is still a materialisation, and a sensor does not
look at checks by itself. So the sensor waits for the producing run to end and reads its audits.
"""

import dagster as dg

from lifecycle_assets import environment
from lifecycle_assets.activation.assets import AUDIENCES, LETTERS_PLANNED, push_to_sendgrid

PAGE = 100
PUSH_READS = (LETTERS_PLANNED, AUDIENCES)
RUN_EVENTS = {
    dg.DagsterEventType.ASSET_MATERIALIZATION,
    dg.DagsterEventType.ASSET_CHECK_EVALUATION,
    dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED,
}


@dg.sensor(
    job=push_to_sendgrid,
    minimum_interval_seconds=environment.push_sensor_interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="One push_to_sendgrid run per finished run that materialised marts.letters_planned and passed "
    "the blocking audits on marts.letters_planned and marts.audiences; a build that failed one is not pushed "
    "(the tick says which audit and which run).",
)
def push_after_letters_build(context: dg.SensorEvaluationContext):
    """The run key is the producing run's id, so a build is pushed once even if the sensor sees it twice.

    The cursor is the storage id of the last materialisation decided on; every build since is
    answered, in order, so two builds between evaluations give two runs (the second pushes
    nothing new if the first already did: the send ledger and the audience diff see to that).
    A build whose run is still going is not decided yet (its audits run after the asset): the
    cursor stops before it and the next evaluation looks again.
    """
    after = int(context.cursor) if context.cursor else None
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=LETTERS_PLANNED, after_storage_id=after),
        limit=PAGE,
        ascending=True,
    ).records
    if not records:
        return dg.SkipReason("no new build of marts.letters_planned")
    run_requests = []
    not_pushed: list[str] = []
    decided: set[str] = set()
    cursor = after
    for record in records:
        if record.run_id not in decided:
            run = context.instance.get_run_by_id(record.run_id)
            if run is not None and not run.is_finished:
                context.log.info(f"run {record.run_id} built marts.letters_planned and is still going: waiting for its audits")
                break
            decided.add(record.run_id)
            failed = failed_audits(context, record.run_id)
            if failed:
                reason = f"build of run {record.run_id} not pushed: {'; '.join(failed)}"
                context.log.warning(reason)
                not_pushed.append(reason)
            else:
                run_requests.append(
                    dg.RunRequest(run_key=record.run_id, tags={"lifecycle/producing_run": record.run_id})
                )
        cursor = record.storage_id
    new_cursor = str(cursor) if cursor is not None else None
    if not run_requests:
        reason = " | ".join(not_pushed) or "waiting for the run that built marts.letters_planned to finish its audits"
        return dg.SensorResult(skip_reason=reason, cursor=new_cursor)
    if context.instance.get_latest_materialization_event(AUDIENCES) is None:
        context.log.info("marts.audiences was never materialised; the push will sync letters and empty audiences")
    return dg.SensorResult(run_requests=run_requests, cursor=new_cursor)


def failed_audits(context: dg.SensorEvaluationContext, run_id: str) -> list[str]:
    """What stops the build of `run_id`: each failed blocking audit and each audit that never ran.

    An asset the run built is judged by the audits of that run: every audit planned in it and
    every blocking audit the code location defines on it must have passed there (one that never
    ran, because the run died or the audit was left out, leaves the build unaudited). An asset the
    push reads that the run did not build (the hourly run leaves marts.audiences to the daily one)
    is judged by its latest audits, which this run did not change.
    """
    built: set[dg.AssetKey] = set()
    planned: set[dg.AssetCheckKey] = set()
    evaluations: dict[dg.AssetCheckKey, object] = {}
    for event in context.instance.all_logs(run_id, of_type=RUN_EVENTS):
        dagster_event = event.dagster_event
        if dagster_event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            built.add(dagster_event.asset_key)
            continue
        data = dagster_event.event_specific_data
        key = dg.AssetCheckKey(data.asset_key, data.check_name)
        if dagster_event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED:
            planned.add(key)
        else:
            evaluations[key] = data
    built &= set(PUSH_READS)
    required = {key for key in planned if key.asset_key in built} | set(_blocking_checks_on(context, built))
    failed = [
        f"{key.to_user_string()} failed" for key, evaluation in evaluations.items()
        if key in required and evaluation.blocking and not evaluation.passed
    ]
    failed += [f"{key.to_user_string()} never ran" for key in required - evaluations.keys()]

    for key in _blocking_checks_on(context, set(PUSH_READS) - built):
        latest = context.instance.event_log_storage.get_latest_asset_check_execution_by_key([key]).get(key)
        evaluation = latest.event.asset_check_evaluation if latest and latest.event else None
        if evaluation is not None and evaluation.blocking and not evaluation.passed:
            failed.append(f"{key.to_user_string()} failed in run {latest.run_id}")
    return sorted(failed)


def _blocking_checks_on(context: dg.SensorEvaluationContext, assets: set[dg.AssetKey]) -> list[dg.AssetCheckKey]:
    """The blocking checks the code location defines on these assets (none known without it)."""
    repository = context.repository_def
    if repository is None or not assets:
        return []
    graph = repository.asset_graph
    return [
        key
        for key in graph.asset_check_keys
        if key.asset_key in assets and graph.get_check_spec(key).blocking
    ]
