"""Dagster's default run launcher, plus a health check so run monitoring can fail a dead run.

Every run writes the one DuckDB file and the instance runs one run at a time (dagster.yaml): a run
whose process was killed (SIGKILL, OOM, a reboot, `dagster dev` killed with its code server) would
stay STARTED forever, hold the one run slot, and make the hourly schedule skip behind it. Dagster's
run monitoring fails such runs, but only for launchers that can say whether a run worker lives,
and the default launcher cannot. This one can, on this machine: the run worker is the process that
reported the run's RUN_START, and its pid is on that event.

Assumes the daemon runs on the machine the runs run on (true for `make ui` / `dagster dev` and for
one host; with Docker or Kubernetes use their launchers, which have their own health check).
"""

from __future__ import annotations

import dagster as dg
import psutil
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus

# A pid's process must have started by the time its run did; later means the pid was reused.
START_SLACK_SECONDS = 5.0


class LocalRunLauncher(DefaultRunLauncher):
    """Launches like Dagster's default launcher; reports a run worker that is gone as FAILED."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        started = self._instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.RUN_START, limit=1
        ).records
        if not started or started[0].event_log_entry.dagster_event is None:
            # Not started yet, or started before events carried a pid: nothing to judge by.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no RUN_START event with a pid yet")
        entry = started[0].event_log_entry
        pid = entry.dagster_event.pid
        return worker_status(pid, entry.timestamp)


def worker_status(pid: int | None, run_started_at: float) -> CheckRunHealthResult:
    """RUNNING while the process that started the run is alive; FAILED once it is gone."""
    if pid is None:
        return CheckRunHealthResult(WorkerStatus.RUNNING, "the run's start event has no pid")
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker (pid {pid}) died and is a zombie")
        if process.create_time() > run_started_at + START_SLACK_SECONDS:
            return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker (pid {pid}) is gone; the pid is reused")
    except psutil.NoSuchProcess:
        return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker (pid {pid}) is gone")
    return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker (pid {pid}) is alive")
