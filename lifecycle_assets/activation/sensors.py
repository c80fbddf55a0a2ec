"""Start the SendGrid push when a new build of the planned letters lands, once per build."""


import dagster as dg

from lifecycle_assets.activation.assets import AUDIENCES, LETTERS_PLANNED, push_to_sendgrid

PAGE = 100


@dg.sensor(
    job=push_to_sendgrid,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="One push_to_sendgrid run per run that materialised marts.letters_planned.",
)
def push_after_letters_build(context: dg.SensorEvaluationContext):
    """The run key is the producing run's id, so a build is pushed once even if the sensor sees it twice.

    The cursor is the storage id of the last materialisation looked at; every build since is
    answered, in order, so two builds between evaluations give two runs (the second pushes
    nothing new if the first already did: the send ledger and the audience diff see to that).
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
    seen_runs: set[str] = set()
    for record in records:
        if record.run_id in seen_runs:
            continue
        seen_runs.add(record.run_id)
        run_requests.append(
            dg.RunRequest(
                run_key=record.run_id,
                tags={"lifecycle/producing_run": record.run_id},
            )
        )
    audiences_built = context.instance.get_latest_materialization_event(AUDIENCES) is not None
    if not audiences_built:
        context.log.info("marts.audiences was never materialised; the push will sync letters and empty audiences")
    return dg.SensorResult(run_requests=run_requests, cursor=str(records[-1].storage_id))
