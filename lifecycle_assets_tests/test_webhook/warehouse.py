"""A warehouse the way production has one for the webhook tests: customers ingested from landing files, marts of a build."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from lifecycle_assets.ingest.definitions import daily_landing_partitions, ingest_definitions
from lifecycle_assets.quality.definitions import quality_definitions
from lifecycle_assets.resources import LandingZone
from lifecycle_assets.webhook.definitions import JOB_NAME, webhook_definitions
from lifecycle_assets_tests.ingest_harness import run_ingest, write_landing_file
from lifecycle_assets_tests.test_activation.sample_marts import customer_id_of, email_of, write_sample_marts


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def shop_with_plan(tmp_path: Path, customers: int, letters: int) -> tuple[Path, Path, Path]:
    """(landing, warehouse, sample marts): `customers` ingested today, letters `<trigger>:<customer>:<day>#<instance>`."""
    landing, warehouse, sample = tmp_path / "landing", tmp_path / "warehouse.duckdb", tmp_path / "sample.duckdb"
    write_landing_file(landing, "customers", today(), "customers.jsonl", [
        {"customer_id": customer_id_of(n), "email": email_of(n), "registered_at": "2026-01-01T00:00:00",
         "marketing_consent": "true"} for n in range(customers)
    ])
    assert run_ingest(landing, warehouse, today()).result.success
    write_sample_marts(sample, customers=customers, letters=letters)
    return landing, warehouse, sample


def copy_marts(warehouse: Path, sample: Path, instances: int) -> None:
    """The marts of a build: letters (instances 0.. of each customer's letter) and audiences as built earlier."""
    with duckdb.connect(str(warehouse)) as connection:
        connection.execute(f"attach '{sample}' as sample (read_only)")
        connection.execute("create schema if not exists marts")
        connection.execute(
            "create or replace table marts.letters_planned as select * from sample.marts.letters_planned "
            f"where cast(split_part(letter_key, '#', 2) as integer) < {instances}"
        )
        connection.execute("create or replace table marts.audiences as select * from sample.marts.audiences")


def sensor_ingests_webhook_files(landing: Path, warehouse: Path) -> list[str]:
    """Evaluate the webhook sensor as the daemon does and run what it requests; returns the partitions it ran."""
    partitions = daily_landing_partitions("2020-01-01")
    resources = {"duckdb": DuckDBResource(database=str(warehouse)), "landing": LandingZone(root=str(landing))}
    definitions = dg.Definitions.merge(
        ingest_definitions(partitions),
        quality_definitions(),
        webhook_definitions(partitions),
        dg.Definitions(resources=resources),
    )
    sensor = definitions.get_sensor_def("ingest_webhook_events_sensor")
    with dg.DagsterInstance.ephemeral() as instance:
        tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources=resources, definitions=definitions))
        days = [request.partition_key for request in tick.run_requests]
        for day in days:
            assert definitions.resolve_job_def(JOB_NAME).execute_in_process(partition_key=day, instance=instance).success
        again = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, resources=resources, definitions=definitions, cursor=tick.cursor)
        )
        assert not again.run_requests, "nothing new landed: no second run"
    return days
