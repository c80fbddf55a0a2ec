"""One run at a time, as `make` configures the instance: the DuckDB file takes a single writer.

Two runs are submitted with the real `dagster job launch` to an instance whose dagster.yaml is
written by `make dagster-home`; the real `dagster-daemon` dequeues them. While the first holds the
warehouse, the second must wait in the queue, then run after it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
JOB_FILE = Path(__file__).with_name("holds_the_warehouse.py")
BIN = Path(sys.executable).parent


def _wait_for(what: str, condition, timeout: float = 240.0):  # generous: CI machines are shared
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def dagster_home(tmp_path) -> Path:
    home = tmp_path / "dagster_home"
    subprocess.run(["make", "-s", "-C", str(REPOSITORY), "dagster-home", f"DAGSTER_HOME={home}"], check=True)
    assert (home / "dagster.yaml").exists()
    return home


def test_a_second_run_waits_in_the_queue_while_the_first_holds_the_warehouse(dagster_home, tmp_path):
    environment = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    daemon = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-f", str(JOB_FILE)],
        env=environment, cwd=tmp_path, start_new_session=True,
        stdout=(tmp_path / "daemon.log").open("w"), stderr=subprocess.STDOUT,
    )
    try:
        launches = []
        for name in ("first", "second"):  # submitted side by side: each CLI call loads dagster and the job
            config = tmp_path / f"{name}.yaml"
            config.write_text(f"ops:\n  hold_the_warehouse:\n    config:\n      folder: '{tmp_path}'\n      name: {name}\n")
            launches.append(subprocess.Popen(
                [str(BIN / "dagster"), "job", "launch", "-f", str(JOB_FILE), "-j", "holds_the_warehouse", "-c", str(config)],
                env=environment, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            ))
        for launch in launches:
            _, errors = launch.communicate(timeout=300)
            assert launch.returncode == 0, errors.decode()
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:

            def statuses() -> list[dg.DagsterRunStatus]:
                return [run.status for run in instance.get_runs()]

            _wait_for("the first run to start", lambda: list(tmp_path.glob("*.started")))
            # Several dequeue rounds of the daemon pass: the second run stays queued all along.
            for _ in range(8):
                time.sleep(1)
                assert sorted(status.value for status in statuses()) == ["QUEUED", "STARTED"], statuses()
                assert len(list(tmp_path.glob("*.started"))) == 1

            (tmp_path / "release").touch()
            _wait_for("both runs to succeed", lambda: statuses() == [dg.DagsterRunStatus.SUCCESS] * 2)
        first, second = sorted(
            (float((tmp_path / f"{name}.started").read_text()), float((tmp_path / f"{name}.finished").read_text()))
            for name in ("first", "second")
        )
        assert second[0] >= first[1]  # the second run began only after the first had finished
    finally:
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait()
