"""When things run by themselves: the daily lifecycle build and the hourly trigger refresh.

- `daily_lifecycle` (schedule `daily_lifecycle_schedule`, 01:00 UTC): ingests the landing day that
  just closed, with every blocking check, then rebuilds the whole lifecycle and the quarantine summary.
- `hourly_triggers` (schedule `hourly_triggers_schedule`, minute 15): re-ingests today's open landing
  day and rebuilds only what abandoned-cart and abandoned-browse letters need, so those letters
  leave within hours, not the next morning.
Both rebuild `marts.letters_planned`, and the push sensor of the activation domain then starts one
`push_to_sendgrid` run per build.

Every run writes the one DuckDB file, which takes one writer at a time, so the instance runs one
run at a time (dagster.yaml, `make dagster-home`) and the others wait in the queue. The daily run
always queues: a day must be built. An hourly tick is skipped while another warehouse run is queued
or going: the next hour's run covers the same open day, and stacking them would only delay the daily.
A run whose process died is not "going": run monitoring (dagster.yaml, lifecycle_assets/run_launcher.py)
marks it failed within its 30 s poll, and the busy test trusts that status rather than keeping a
liveness rule of its own, so the UI and the schedule agree on what is running. The daemon that ticks
the schedule is the one that monitors runs: when it is down neither happens.
Schedules start stopped; an operator turns them on (docs/runbook.md), the push sensor runs by default.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from lifecycle_assets.activation.assets import LETTERS_PLANNED
from lifecycle_assets.quality.checks import DAILY_VOLUME_ENTITIES, VOLUME_ANOMALY_CHECK

TIMEZONE = "UTC"  # landing days are UTC days (docs/data_contract.md)
# Runs that write the warehouse; an hourly tick is skipped while one of them is queued or going.
WAREHOUSE_WRITING_JOBS = ("daily_lifecycle", "hourly_triggers", "push_to_sendgrid")
NOT_FINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]

DAILY_SELECTION = dg.AssetSelection.groups("ingest", "quality", "lifecycle")
# The volume check is a whole-day measure that a day still landing fails by design: judged by the
# daily run, not hourly.
HOURLY_SELECTION = (
    dg.AssetSelection.groups("ingest") | dg.AssetSelection.assets(LETTERS_PLANNED).upstream()
) - dg.AssetSelection.checks(
    *(dg.AssetCheckKey(dg.AssetKey(["raw", entity]), VOLUME_ANOMALY_CHECK) for entity in DAILY_VOLUME_ENTITIES)
)


def warehouse_busy(context: dg.ScheduleEvaluationContext) -> str | None:
    """The job and id of a run that is queued or writing the warehouse, if any (dead runs are failed by monitoring)."""
    for job_name in WAREHOUSE_WRITING_JOBS:
        runs = context.instance.get_runs(filters=dg.RunsFilter(job_name=job_name, statuses=NOT_FINISHED), limit=1)
        if runs:
            return f"{job_name} run {runs[0].run_id[:8]}"
    return None


def automation_definitions(partitions: dg.DailyPartitionsDefinition) -> dg.Definitions:
    """Jobs and schedules over the project's daily landing partitions."""
    daily_lifecycle = dg.define_asset_job(
        "daily_lifecycle",
        selection=DAILY_SELECTION,
        description="Ingest one landing day (the partition) with every blocking quality check, then rebuild "
        "the quarantine summary and the whole lifecycle: stages, segments, triggers, planned letters, audiences, "
        "report. Launch it for a past day to redo that day.",
        tags={"lifecycle/automation": "daily"},
    )
    hourly_triggers = dg.define_asset_job(
        "hourly_triggers",
        selection=HOURLY_SELECTION,
        description="Re-ingest today's landing day as it stands and rebuild the models behind "
        "marts.letters_planned, so abandoned-cart and abandoned-browse letters go out within the hour. "
        "The whole-day volume checks are left to the daily run: a day still landing is small by design.",
        tags={"lifecycle/automation": "hourly"},
    )

    @dg.schedule(
        cron_schedule="0 1 * * *",
        job=daily_lifecycle,
        execution_timezone=TIMEZONE,
        name="daily_lifecycle_schedule",
        description="01:00 UTC: daily_lifecycle for the landing day that just closed (yesterday), "
        "so each day is ingested once it is complete. Queues behind a run still writing the warehouse.",
    )
    def daily_lifecycle_schedule(context: dg.ScheduleEvaluationContext):
        closed_day = (context.scheduled_execution_time - timedelta(days=1)).strftime("%Y-%m-%d")
        return _request_day(partitions, closed_day, run_key=f"daily_lifecycle:{closed_day}")

    @dg.schedule(
        cron_schedule="15 * * * *",
        job=hourly_triggers,
        execution_timezone=TIMEZONE,
        name="hourly_triggers_schedule",
        description="Every hour at :15: hourly_triggers for today's landing day, so abandoned-cart and "
        "abandoned-browse letters are planned (and pushed by the sensor) within the hour. "
        "Skipped while another run that writes the warehouse is queued or going.",
    )
    def hourly_triggers_schedule(context: dg.ScheduleEvaluationContext):
        today = context.scheduled_execution_time.strftime("%Y-%m-%d")
        busy = warehouse_busy(context)
        if busy:
            return dg.SkipReason(f"{busy} is queued or writing the warehouse; the next hour covers {today}")
        hour = context.scheduled_execution_time.strftime("%Y-%m-%dT%H")
        return _request_day(partitions, today, run_key=f"hourly_triggers:{hour}")

    return dg.Definitions(
        jobs=[daily_lifecycle, hourly_triggers],
        schedules=[daily_lifecycle_schedule, hourly_triggers_schedule],
    )


def _request_day(partitions: dg.DailyPartitionsDefinition, day: str, run_key: str) -> dg.RunRequest | dg.SkipReason:
    """One run for the landing day, unless it precedes the first landing day.

    The run key names the day (and hour) in the run's tags; with the tick time, Dagster uses it to
    launch a tick that is evaluated twice (daemon restart) once.
    """
    first_day = partitions.start.strftime("%Y-%m-%d")
    if day < first_day:
        return dg.SkipReason(f"{day} is before the first landing day {first_day}")
    return dg.RunRequest(run_key=run_key, partition_key=day)
