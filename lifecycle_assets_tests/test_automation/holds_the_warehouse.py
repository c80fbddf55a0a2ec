"""A job that stands for any run writing the warehouse: it holds on until the test releases it.

Used by test_one_run_at_a_time.py through the real `dagster job launch` and `dagster-daemon`.
"""

import time
from pathlib import Path

import dagster as dg


@dg.op(config_schema={"folder": str, "name": str})
def hold_the_warehouse(context: dg.OpExecutionContext) -> None:
    folder, name = Path(context.op_config["folder"]), context.op_config["name"]
    (folder / f"{name}.started").write_text(repr(time.time()))
    deadline = time.monotonic() + 120
    while not (folder / "release").exists():
        if time.monotonic() > deadline:
            raise dg.Failure("the test never released the run")
        time.sleep(0.1)
    (folder / f"{name}.finished").write_text(repr(time.time()))


@dg.job(executor_def=dg.in_process_executor)  # as the project's jobs: no step subprocess
def holds_the_warehouse() -> None:
    hold_the_warehouse()
