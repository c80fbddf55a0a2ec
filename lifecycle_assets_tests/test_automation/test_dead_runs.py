"""A run whose process died does not stall the pipeline: monitoring fails it, the hourly run goes through.

The instance is a real one in a temporary DAGSTER_HOME with the dagster.yaml `make dagster-home`
writes; the run is a real run in its own process, killed with SIGKILL; the monitoring step is the
monitoring daemon's own iteration (benchmarks/dead_run_benchmark.py measures the real daemon).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import EmptyWorkspaceTarget
from dagster._daemon.monitoring.run_monitoring import execute_run_monitoring_iteration

from lifecycle_assets.definitions import build_definitions

REPOSITORY = Path(__file__).resolve().parents[2]
# Stands in for an hourly run that is writing the warehouse when its process is killed.
RUN_WORKER = """
import time
import dagster as dg

@dg.op
def write_the_warehouse():
    time.sleep(600)

@dg.job(name="hourly_triggers")
def hourly_triggers():
    write_the_warehouse()

with dg.DagsterInstance.get() as instance:
    hourly_triggers.execute_in_process(instance=instance)
"""
NEXT_HOUR = datetime(2026, 3, 2, 15, 15, tzinfo=timezone.utc)


def project_dagster_home(home: Path) -> Path:
    """The project's own dagster.yaml, written by its Makefile into a fresh DAGSTER_HOME."""
    subprocess.run(["make", "-s", "dagster-home", f"DAGSTER_HOME={home}"], cwd=REPOSITORY, check=True)
    return home


def wait_until_writing(instance: dg.DagsterInstance, timeout: float = 40.0) -> dg.DagsterRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name="hourly_triggers", statuses=[dg.DagsterRunStatus.STARTED]))
        if runs and instance.get_records_for_run(runs[0].run_id, of_type=dg.DagsterEventType.STEP_START).records:
            return runs[0]
        time.sleep(0.2)
    raise AssertionError("the run worker never started its step")


def hourly_tick(instance: dg.DagsterInstance):
    definitions = build_definitions("2026-01-01")
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=NEXT_HOUR, repository_def=definitions.get_repository_def()
    )
    return definitions.resolve_schedule_def("hourly_triggers_schedule").evaluate_tick(context)


@pytest.fixture
def dagster_home(tmp_path, monkeypatch):
    home = project_dagster_home(tmp_path / "dagster_home")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def test_a_killed_run_is_failed_by_monitoring_and_the_next_hourly_run_goes_through(dagster_home, tmp_path):
    worker_file = tmp_path / "run_worker.py"
    worker_file.write_text(RUN_WORKER)
    worker = subprocess.Popen([sys.executable, str(worker_file)], env=os.environ | {"DAGSTER_HOME": str(dagster_home)})
    try:
        with dg.DagsterInstance.get() as instance:
            run = wait_until_writing(instance)
            assert "hourly_triggers run" in hourly_tick(instance).skip_message, "a live run keeps the hourly tick back"

            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED, "nobody else fails it"

            with WorkspaceProcessContext(instance, EmptyWorkspaceTarget()) as workspace:
                list(execute_run_monitoring_iteration(workspace, logging.getLogger("run_monitoring")))

            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
            [request] = hourly_tick(instance).run_requests
            assert request.partition_key == "2026-03-02"
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_monitoring_leaves_a_live_run_alone(dagster_home, tmp_path):
    worker_file = tmp_path / "run_worker.py"
    worker_file.write_text(RUN_WORKER)
    worker = subprocess.Popen([sys.executable, str(worker_file)], env=os.environ | {"DAGSTER_HOME": str(dagster_home)})
    try:
        with dg.DagsterInstance.get() as instance:
            run = wait_until_writing(instance)
            with WorkspaceProcessContext(instance, EmptyWorkspaceTarget()) as workspace:
                list(execute_run_monitoring_iteration(workspace, logging.getLogger("run_monitoring")))
            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
    finally:
        worker.kill()
        worker.wait()
