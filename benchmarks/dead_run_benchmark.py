"""Minutes from SIGKILL of a run's process until the real `dagster-daemon` marks the run failed (issue 8).

    .venv/bin/python benchmarks/dead_run_benchmark.py --kills 3

A fresh DAGSTER_HOME with the project's dagster.yaml (`make dagster-home`: run monitoring on, poll
every 30 s, the launcher of lifecycle_assets/run_launcher.py), a `dagster-daemon run` on it, then
per kill: a run in its own process, SIGKILL once it is writing, and the time until the run's status
is FAILURE. The daemon is started before the first kill, as in production. Prints one line per kill
and, last, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lifecycle_assets_tests.test_automation.test_dead_runs import (  # noqa: E402
    RUN_WORKER,
    project_dagster_home,
    wait_until_writing,
)

GIVE_UP_SECONDS = 600


def seconds_until_failed(instance: dg.DagsterInstance, run_id: str) -> float:
    killed_at = time.monotonic()
    while time.monotonic() - killed_at < GIVE_UP_SECONDS:
        if instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE:
            return time.monotonic() - killed_at
        time.sleep(0.5)
    raise SystemExit(f"run {run_id} still not failed {GIVE_UP_SECONDS} s after the kill")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        home = project_dagster_home(Path(scratch) / "dagster_home")
        env = os.environ | {"DAGSTER_HOME": str(home)}
        os.environ["DAGSTER_HOME"] = str(home)
        worker_file = Path(scratch) / "run_worker.py"
        worker_file.write_text(RUN_WORKER)
        daemon = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster-daemon")), "run", "--empty-workspace"],
            env=env, cwd=scratch, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        figures = []
        try:
            with dg.DagsterInstance.get() as instance:
                for kill in range(1, args.kills + 1):
                    worker = subprocess.Popen([sys.executable, str(worker_file)], env=env)
                    run = wait_until_writing(instance, timeout=120)
                    worker.send_signal(signal.SIGKILL)
                    worker.wait()
                    seconds = seconds_until_failed(instance, run.run_id)
                    figures.append(seconds)
                    print(f"kill {kill}: run {run.run_id[:8]} marked FAILURE {seconds:.1f} s after SIGKILL", flush=True)
        finally:
            os.killpg(daemon.pid, signal.SIGKILL)  # the daemon's own process group, started above
            daemon.wait()
    print(
        json.dumps(
            {
                "benchmark": "dead_run",
                "poll_interval_seconds": 30,
                "kills": len(figures),
                "seconds_to_failed": [round(s, 1) for s in figures],
                "max_minutes": round(max(figures) / 60, 2),
                "median_minutes": round(statistics.median(figures) / 60, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
