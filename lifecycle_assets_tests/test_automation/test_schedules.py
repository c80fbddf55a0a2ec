"""The schedules launch the right landing day and the right assets, and the hourly one yields to busy runs."""

from datetime import datetime, timezone

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test

from lifecycle_assets.definitions import build_definitions

FIRST_LANDING_DAY = "2026-01-01"


@pytest.fixture(scope="module")
def definitions() -> dg.Definitions:
    return build_definitions(FIRST_LANDING_DAY)


def tick(definitions, schedule_name: str, at: datetime, instance: dg.DagsterInstance):
    schedule = definitions.resolve_schedule_def(schedule_name)
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=at, repository_def=definitions.get_repository_def()
    )
    return schedule.evaluate_tick(context)


def selected(definitions, job_name: str) -> tuple[set[str], set[str]]:
    job = definitions.resolve_job_def(job_name)
    graph = job.asset_layer.asset_graph
    assets = {key.to_user_string() for key in graph.get_all_asset_keys() if graph.get(key).is_executable}
    checks = {key.to_user_string() for key in graph.asset_check_keys}
    return assets, checks


def test_daily_schedule_builds_the_day_that_just_closed(definitions):
    with dg.instance_for_test() as instance:
        result = tick(definitions, "daily_lifecycle_schedule", datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc), instance)
    [request] = result.run_requests
    assert request.partition_key == "2026-03-01"
    assert definitions.resolve_schedule_def("daily_lifecycle_schedule").job_name == "daily_lifecycle"


def test_daily_schedule_queues_even_while_another_run_writes_the_warehouse(definitions):
    with dg.instance_for_test() as instance:
        create_run_for_test(instance, job_name="push_to_sendgrid", status=dg.DagsterRunStatus.STARTED)
        result = tick(definitions, "daily_lifecycle_schedule", datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc), instance)
    assert [request.partition_key for request in result.run_requests] == ["2026-03-01"]


def test_hourly_schedule_refreshes_today(definitions):
    with dg.instance_for_test() as instance:
        result = tick(definitions, "hourly_triggers_schedule", datetime(2026, 3, 2, 14, 15, tzinfo=timezone.utc), instance)
    [request] = result.run_requests
    assert request.partition_key == "2026-03-02"
    assert request.run_key == "hourly_triggers:2026-03-02T14"


@pytest.mark.parametrize("busy_job", ["daily_lifecycle", "hourly_triggers", "push_to_sendgrid"])
# A QUEUED run needs a remote job origin to be created; STARTING is the state a run leaves the queue in.
@pytest.mark.parametrize("status", [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED], ids=["starting", "started"])
def test_hourly_schedule_skips_while_a_warehouse_run_is_going(definitions, busy_job, status):
    with dg.instance_for_test() as instance:
        create_run_for_test(instance, job_name=busy_job, status=status)
        result = tick(definitions, "hourly_triggers_schedule", datetime(2026, 3, 2, 14, 15, tzinfo=timezone.utc), instance)
    assert not result.run_requests
    assert busy_job in result.skip_message


def test_hourly_schedule_runs_again_once_the_earlier_run_finished(definitions):
    with dg.instance_for_test() as instance:
        create_run_for_test(instance, job_name="daily_lifecycle", status=dg.DagsterRunStatus.SUCCESS)
        result = tick(definitions, "hourly_triggers_schedule", datetime(2026, 3, 2, 14, 15, tzinfo=timezone.utc), instance)
    assert len(result.run_requests) == 1


def test_schedules_skip_days_before_the_first_landing_day(definitions):
    with dg.instance_for_test() as instance:
        result = tick(definitions, "daily_lifecycle_schedule", datetime(2026, 1, 1, 1, 0, tzinfo=timezone.utc), instance)
    assert not result.run_requests
    assert "2025-12-31" in result.skip_message


def test_daily_job_ingests_with_every_check_and_rebuilds_the_whole_lifecycle(definitions):
    assets, checks = selected(definitions, "daily_lifecycle")
    graph = definitions.resolve_asset_graph()
    expected = {
        key.to_user_string()
        for key in graph.get_all_asset_keys()
        if graph.get(key).group_name in {"ingest", "quality", "lifecycle"}
    }
    assert assets == expected
    assert "raw/orders:volume_anomaly" in checks and "marts/letters_planned:no_letter_without_consent" in checks
    assert not any(asset.startswith("activation/") for asset in assets), "the push is the sensor's, after the build"


def test_hourly_job_rebuilds_the_triggers_without_whole_day_volume_checks(definitions):
    assets, checks = selected(definitions, "hourly_triggers")
    assert {"raw/interactions", "raw/orders", "marts/trigger_events", "marts/letters_planned"} <= assets
    assert "marts/customer_stage_history" not in assets, "stage history is a daily record"
    assert not any(check.endswith(":volume_anomaly") for check in checks)
    assert "raw/interactions:quarantine_rate" in checks and "marts/letters_planned:letter_keys_unique" in checks


def test_every_job_and_schedule_says_what_it_does(definitions):
    for job_name in ("daily_lifecycle", "hourly_triggers"):
        assert definitions.resolve_job_def(job_name).description
    for schedule in definitions.schedules:
        assert schedule.description and schedule.execution_timezone == "UTC"
