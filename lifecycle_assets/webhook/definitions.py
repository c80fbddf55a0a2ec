"""Webhook events reach the warehouse within minutes: a sensor ingests new webhook files into their landing day.

The receiver (`lifecycle-webhook`) only writes landing files; ingesting them is the ordinary
`raw.interactions` asset for that landing day (today's, or yesterday's for a file that landed just
before midnight), so webhook events pass the same contract and checks as the shop's exports. The
push reads `raw.interactions` for suppressions, so an unsubscribe ingested here holds back every
later letter to that customer; the audience sync re-checks the raw tables, so the customer leaves
every list at the next push (docs/webhook.md).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from lifecycle_assets.automation import NOT_FINISHED
from lifecycle_assets.quality.checks import VOLUME_ANOMALY_CHECK
from lifecycle_assets.resources import LandingZone
from lifecycle_assets.webhook.landing import ENTITY, FILE_PREFIX

RAW_INTERACTIONS = dg.AssetKey(["raw", ENTITY])
JOB_NAME = "ingest_webhook_events"
SENSOR_INTERVAL_SECONDS = 60


def newest_webhook_file(landing_root: Path, day: str) -> str | None:
    """The name of the newest webhook file of a landing day; names sort by the time they were received."""
    folder = Path(landing_root) / ENTITY / f"date={day}"
    names = [path.name for path in folder.glob(f"{FILE_PREFIX}*.jsonl")] if folder.is_dir() else []
    return max(names, default=None)


def webhook_definitions(partitions: dg.DailyPartitionsDefinition) -> dg.Definitions:
    ingest_webhook_events = dg.define_asset_job(
        JOB_NAME,
        selection=dg.AssetSelection.assets(RAW_INTERACTIONS)
        - dg.AssetSelection.checks(dg.AssetCheckKey(RAW_INTERACTIONS, VOLUME_ANOMALY_CHECK)),
        description="Re-ingest one landing day of raw.interactions, so SendGrid events the webhook landed "
        "(unsubscribes, bounces, spam reports, deliveries) are in the warehouse within minutes. "
        "The whole-day volume check is left to the daily run.",
        tags={"lifecycle/automation": "webhook"},
    )

    @dg.sensor(
        job=ingest_webhook_events,
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Every minute: when the Event Webhook receiver has landed new files for today (or late ones "
        "for yesterday), ingest that landing day's interactions. Waits while such a run is still queued or going.",
    )
    def ingest_webhook_events_sensor(context: dg.SensorEvaluationContext, landing: LandingZone):
        running = context.instance.get_runs(filters=dg.RunsFilter(job_name=JOB_NAME, statuses=NOT_FINISHED), limit=1)
        if running:
            return dg.SkipReason(f"{JOB_NAME} run {running[0].run_id[:8]} is still queued or going")
        seen = dict(item.split("|", 1) for item in (context.cursor or "").split(",") if "|" in item)
        today = datetime.now(UTC).date()
        first_day = partitions.start.strftime("%Y-%m-%d")
        requests, cursor = [], {}
        for day in sorted({(today - timedelta(days=1)).isoformat(), today.isoformat()}):
            newest = newest_webhook_file(Path(landing.root), day)
            if newest is None or day < first_day:
                continue
            cursor[day] = newest
            if newest > seen.get(day, ""):
                requests.append(dg.RunRequest(run_key=f"{JOB_NAME}:{day}:{newest}", partition_key=day))
        context.update_cursor(",".join(f"{day}|{name}" for day, name in sorted(cursor.items())))
        return requests or dg.SkipReason("no new webhook files")

    return dg.Definitions(jobs=[ingest_webhook_events], sensors=[ingest_webhook_events_sensor])
