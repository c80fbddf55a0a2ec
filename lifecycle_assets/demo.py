"""`make demo`: the whole product end to end on an embedded sample shop.

Generates a deterministic sample shop into the landing zone, ingests every landing day in one
run, builds the lifecycle model, then runs the SendGrid push (dry-run into the outbox unless
SENDGRID_API_KEY is set). Runs are recorded in $DAGSTER_HOME, so they show in the UI afterwards.

A person reads a short progress view: each step with its counts and time, a progress bar while
a run executes its steps, and where the warehouse, outbox, log and UI are. Dagster's own log
(every event, DEBUG included) goes to a file under data/logs/ instead of the terminal.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TextIO

import dagster as dg
import duckdb
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from lifecycle_assets import environment
from lifecycle_assets.definitions import build_definitions
from lifecycle_assets.sample_data.sample_shop import generate_sample_shop

PIPELINE_GROUPS = ("ingest", "quality", "lifecycle")
DEMO_RUN_TAG = "lifecycle/demo_step"
UI_ADDRESS = "http://127.0.0.1:3000"
# Dagster's console logger prints every event at DEBUG; the demo's runs send it to the log file instead.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
FINISHED_STEP_EVENTS = {"STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"}
DEMO_MIN_LETTERS_PER_GROUP = 30


class RunLog:
    """Follows one run in the instance's event log: writes every event to the log file, counts finished steps."""

    def __init__(self, instance: dg.DagsterInstance, token: str, log_file: TextIO):
        self.instance, self.token, self.log_file = instance, token, log_file
        self.run_id: str | None = None
        self.total_steps: int | None = None
        self.finished_steps = 0
        self.current_step = ""
        self._cursor: str | None = None

    def poll(self) -> None:
        if self.run_id is None:
            runs = self.instance.get_runs(filters=dg.RunsFilter(tags={DEMO_RUN_TAG: self.token}), limit=1)
            if not runs:
                return
            self.run_id = runs[0].run_id
            plan = self.instance.get_execution_plan_snapshot(runs[0].execution_plan_snapshot_id)
            self.total_steps = len(plan.steps)
        while True:
            page = self.instance.get_records_for_run(self.run_id, cursor=self._cursor, limit=500)
            for record in page.records:
                self._write(record.event_log_entry)
            self._cursor = page.cursor
            if not page.has_more:
                break

    def _write(self, entry) -> None:
        event_type = entry.dagster_event_type.value if entry.dagster_event_type else ""
        stamp = datetime.fromtimestamp(entry.timestamp).astimezone().strftime("%Y-%m-%d %H:%M:%S %z")
        level = logging.getLevelName(entry.level)
        parts = [stamp, level, entry.job_name or "", entry.run_id, entry.step_key or "", event_type, entry.user_message]
        self.log_file.write(" - ".join(part for part in parts if part) + "\n")
        if event_type == "STEP_START":
            self.current_step = entry.step_key or ""
        elif event_type in FINISHED_STEP_EVENTS:
            self.finished_steps += 1


def run_with_progress(
    console: Console, title: str, instance: dg.DagsterInstance, log_file: TextIO, execute: Callable[[dict], dg.ExecuteInProcessResult]
) -> tuple[dg.ExecuteInProcessResult, float]:
    """Executes the run here; a watcher thread reads its events into the log file and the progress bar."""
    token = uuid.uuid4().hex
    run_log = RunLog(instance, token, log_file)
    done = threading.Event()
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps"),
        TimeElapsedColumn(),
        TextColumn("[dim]{task.fields[step]}"),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # piped into a file: the step lines below say it all
        redirect_stdout=False,
        redirect_stderr=False,
    )
    task = progress.add_task(title, total=None, step="")

    def watch() -> None:
        while not done.wait(0.3):
            run_log.poll()
            progress.update(task, total=run_log.total_steps, completed=run_log.finished_steps, step=run_log.current_step[:48])

    started = time.perf_counter()
    watcher = threading.Thread(target=watch, name="demo-progress", daemon=True)
    with progress:
        watcher.start()
        try:
            result = execute({DEMO_RUN_TAG: token})
        finally:
            done.set()
            watcher.join()
    run_log.poll()  # the events written after the watcher's last look
    log_file.flush()
    return result, time.perf_counter() - started


def _metadata(result: dg.ExecuteInProcessResult) -> dict[dg.AssetKey, dict]:
    return {
        event.asset_key: {key: value.value for key, value in event.materialization.metadata.items()}
        for event in result.get_asset_materialization_events()
    }


def _checks_line(result: dg.ExecuteInProcessResult) -> tuple[str, list[str]]:
    evaluations = result.get_asset_check_evaluations()
    failed = [e for e in evaluations if not e.passed]
    problems = [
        f"{e.asset_key.to_user_string()} {e.check_name} ({e.severity.value.lower()})" for e in failed
    ]
    return f"{len(evaluations)} checks, {len(evaluations) - len(failed)} passed", problems


def _print_step(console: Console, number: str, title: str, ok: bool, counts: str, seconds: float) -> None:
    mark = "[green]✓[/]" if ok else "[red]✗[/]"
    console.print(f"{mark} {number} [bold]{title:<31}[/] {counts}  [dim]{seconds:.1f} s[/]")


def _open_log(started_at: datetime) -> tuple[Path, TextIO]:
    """One log file per demo; library logging and Python warnings go there too, not to the terminal."""
    path = environment.logs_dir() / f"demo-{started_at:%Y%m%d-%H%M%S}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    log_file = path.open("w", encoding="utf-8")
    handler = logging.StreamHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s - %(levelname)s - %(name)s - %(message)s"))
    logging.captureWarnings(True)
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.WARNING)
    return path, log_file


def _letter_lift_step(console: Console, last_day: date, lift_days: int, letter_effect: float) -> None:
    """The lift table of the planted welcome-letter effect: the letters of `lift_days` days before the last
    attribution window, replayed on a copy of the warehouse (nothing sent), then judged as of the last day."""
    import shutil

    from lifecycle_assets.activation.lift import letter_lift_report, lift_markdown
    from lifecycle_assets.models.settings import LifecycleSettings
    from lifecycle_assets.models.sql_models import build_all
    from lifecycle_assets.sample_data.letter_effect import plant_letter_effect, replay_letter_days

    step_started = time.perf_counter()
    # A small demo shop sends few welcome letters a day: judge from 30 letters per group (default 100).
    settings = LifecycleSettings(lift_min_letters_per_group=DEMO_MIN_LETTERS_PER_GROUP)
    window = settings.lift_attribution_window_days
    replay = environment.warehouse_path().with_name("lift_replay.duckdb")
    shutil.copyfile(environment.warehouse_path(), replay)
    with console.status(f"replaying {lift_days} days of letters for the lift table"), duckdb.connect(str(replay)) as con:
        con.execute("drop schema if exists activation cascade")
        first, last = last_day - timedelta(days=window + lift_days), last_day - timedelta(days=window + 1)
        replay_letter_days(con, first, last, settings)
        planted = plant_letter_effect(con, "welcome", letter_effect, window)
        build_all(con, settings.model_copy(update={"as_of": last_day.isoformat()}))
        lifts = letter_lift_report(con, last_day, window, settings.lift_min_letters_per_group)
    shown = [lift for lift in lifts if lift.sent or lift.held_out]
    _print_step(console, "4/4", "Letter lift (replayed copy)", True,
                f"letters planned {first}..{last}, welcome effect +{letter_effect:.0%} planted ({planted} orders), "
                f"min {DEMO_MIN_LETTERS_PER_GROUP} letters per group", time.perf_counter() - step_started)
    console.print(lift_markdown(shown), markup=False)
    console.print(f"      [dim]{replay} (python -m lifecycle_assets.demo --lift-days 0 skips this step)[/]")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--letter-effect", type=float, default=0.3,
                        help="on the lift step's copy: welcome letter recipients buy with this extra probability within a week")
    parser.add_argument("--lift-days", type=int, default=28,
                        help="days of letters replayed on a copy of the warehouse for the lift table (0: skip)")
    args = parser.parse_args(argv)

    # Dagster captures a run's output at the file-descriptor level; the view writes to its own copy of stdout.
    terminal = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1, encoding="utf-8")
    console = Console(file=terminal, highlight=False, soft_wrap=True)
    started, started_at = time.perf_counter(), datetime.now()
    log_path, log_file = _open_log(started_at)
    console.print(f"[bold]Lifecycle demo[/]: a sample shop of {args.customers:,} customers over {args.days} days")
    console.print(f"[dim]Dagster's full log: {log_path}[/]")

    step_started = time.perf_counter()
    end_day = date.today() - timedelta(days=1)
    with console.status("generating the sample shop"):
        shop = generate_sample_shop(
            environment.landing_dir(), customers=args.customers, days=args.days, end_day=end_day, seed=args.seed
        )
    rows = ", ".join(f"{entity} {count:,}" for entity, count in shop["rows"].items())
    _print_step(console, "1/4", "Sample shop", True, f"{shop['files']:,} files, {shop['first_day']}..{shop['last_day']}",
                time.perf_counter() - step_started)
    console.print(f"      [dim]{rows}[/]")

    defs = build_definitions(first_landing_day=min(shop["first_day"], environment.first_landing_day()))
    graph = defs.resolve_asset_graph()
    instance = dg.DagsterInstance.get()
    pipeline, seconds = run_with_progress(
        console, "ingest, quality, lifecycle", instance, log_file,
        lambda tags: dg.materialize(
            [*defs.assets, *(defs.asset_checks or [])],
            selection=dg.AssetSelection.groups(*PIPELINE_GROUPS),
            instance=instance,
            resources=defs.resources,
            run_config=QUIET_CONSOLE,
            tags={
                "dagster/asset_partition_range_start": shop["first_day"],
                "dagster/asset_partition_range_end": shop["last_day"],
                "lifecycle/started_by": "make demo",
                **tags,
            },
            raise_on_error=False,
        ),
    )
    materialized = _metadata(pipeline)
    checks, problems = _checks_line(pipeline)
    _print_step(console, "2/4", "Ingest, quality, lifecycle", pipeline.success, f"{len(materialized)} assets, {checks}", seconds)
    per_group: dict[str, Counter] = {}
    for key, metadata in materialized.items():
        counts = per_group.setdefault(graph.get(key).group_name or "default", Counter())
        counts["assets"] += 1
        counts["rows"] += int(metadata.get("dagster/row_count") or 0)
    for group in PIPELINE_GROUPS:
        if group in per_group:
            assets, rows = per_group[group]["assets"], per_group[group]["rows"]
            shown_rows = f"{rows:>12,} rows" if rows else ""
            console.print(f"      [dim]{group:<10} {assets:>3} asset{'s' if assets != 1 else ' '} {shown_rows}[/]")
    for problem in problems:
        console.print(f"      [yellow]check did not pass: {problem}[/]")
    if not pipeline.success:
        console.print(f"[red]The pipeline run {pipeline.run_id} failed[/]: see {log_path}, or open the run in the UI (make ui).")
        raise SystemExit(1)

    job = defs.resolve_job_def("push_to_sendgrid")
    push, seconds = run_with_progress(
        console, "push to SendGrid", instance, log_file,
        lambda tags: job.execute_in_process(instance=instance, run_config=QUIET_CONSOLE, tags=tags, raise_on_error=False),
    )
    pushed = _metadata(push)
    letters = pushed.get(dg.AssetKey(["activation", "sendgrid_letters"]), {})
    audiences = pushed.get(dg.AssetKey(["activation", "sendgrid_audiences"]), {})
    templates = pushed.get(dg.AssetKey(["activation", "sendgrid_templates"]), {})
    dry_run = bool(letters.get("dry_run", templates.get("dry_run")))
    title = "Push to SendGrid (dry-run)" if dry_run else "Push to SendGrid"
    _print_step(
        console, "3/4", title, push.success,
        f"{templates.get('dagster/row_count', 0)} templates, {audiences.get('lists', 0)} lists of "
        f"{audiences.get('dagster/row_count', 0):,} contacts, {letters.get('letters_sent', 0):,} letters "
        f"({letters.get('letters_suppressed', 0):,} suppressed)",
        seconds,
    )

    if args.lift_days > 0:
        _letter_lift_step(console, date.fromisoformat(shop["last_day"]), args.lift_days, args.letter_effect)

    with duckdb.connect(str(environment.warehouse_path()), read_only=True) as con:
        stages = con.execute("SELECT stage, count(*) FROM marts.customer_lifecycle GROUP BY 1 ORDER BY 2 DESC").fetchall()
    console.print("      [dim]customers per stage: " + ", ".join(f"{stage} {count:,}" for stage, count in stages) + "[/]")
    outbox = letters.get("outbox") or environment.outbox_dir()
    console.print(f"\n[bold]Done in {time.perf_counter() - started:.0f} s.[/] Where things are:")
    console.print(f"  warehouse    {environment.warehouse_path()}")
    console.print(f"  outbox       {outbox}" + ("" if dry_run else " (unused: SENDGRID_API_KEY is set)"))
    console.print(f"  Dagster log  {log_path}")
    console.print(f"  UI           `make ui`, then {UI_ADDRESS} (runs {pipeline.run_id[:8]} and {push.run_id[:8]})")
    log_file.close()
    if not push.success:
        raise SystemExit(f"The push run {push.run_id} failed; see {log_path} or the run in the UI.")


if __name__ == "__main__":
    main()
