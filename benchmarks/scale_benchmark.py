"""The whole pipeline at scale: generate, ingest with every check, build every model, the next day.

    .venv/bin/python benchmarks/scale_benchmark.py --customers 100000 [--days 365] [--keep DIR] [--dirty]
    .venv/bin/python benchmarks/scale_benchmark.py --customers 5000000 --keep DIR --phases generate,floor,ingest
    .venv/bin/python benchmarks/scale_benchmark.py --customers 5000000 --keep DIR --phases build,daily

Generates a sample shop of ``days + 1`` landing days, ingests the first ``days`` in one run with
every check, builds every model, then runs the next daily run on top (ingest of the last landing
day and a model build). In the same run it measures the floor: a bare DuckDB scan of the landing
files the ingest read (``read_csv`` with explicit columns, ``read_parquet``, ``read_json``).

Each phase runs in its own process, so seconds, CPU seconds (the whole process, imports included:
on a shared machine wall seconds depend on the load), peak RSS and the peak size of DuckDB's spill
folder beside the warehouse (disk used beyond ``memory_limit``) are per phase, each printed as it ends; the runs go through the
project's own Definitions (``lifecycle_assets.definitions``), so whatever ingest is in place is
measured. With ``--dirty`` the shop holds the generator's bad rows and files, and after the daily run
the quarantine (rows by entity and reason, files by reason) is compared with the generator's manifest. With ``--keep DIR``, DIR holds ``landing/`` and ``warehouse.duckdb`` afterwards. With
``--phases`` only those phases run, on what an earlier run kept in DIR (a 5M shop takes an hour: its
ingest and its build can be measured apart); a figure of a phase not run is null. The last line is one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path

PHASES = ("generate", "floor", "ingest", "build", "daily")
FLOOR_MEMORY_LIMIT = "2GB"
BACKTEST_STEP = "marts__lapse_backtest"  # reported on its own, whether or not among the slowest
QUIET_RUN = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


# --- Phases (each in a child process) ------------------------------------------------------------


def phase_generate(folder: Path, args: argparse.Namespace) -> dict:
    from lifecycle_assets.sample_data.sample_shop import generate_sample_shop

    started = time.perf_counter()
    shop = generate_sample_shop(folder / "landing", args.customers, args.days + 1, args.end_day, seed=args.seed, dirty=args.dirty)
    return {"seconds": time.perf_counter() - started, "rows": shop["rows"], "files": shop["files"], "first_day": shop["first_day"], "last_day": shop["last_day"]}


def landing_files(landing: Path, last_day: str) -> dict[str, dict[str, list[str]]]:
    """The landing files of each entity up to ``last_day``, by format (what a backfill to that day reads)."""
    from lifecycle_assets.ingest.contract import ENTITIES

    files: dict[str, dict[str, list[str]]] = {}
    for entity in ENTITIES:
        for folder in sorted((landing / entity).glob("date=*")):
            if folder.name[5:] > last_day:
                continue
            for path in sorted(folder.iterdir()):
                files.setdefault(entity, {}).setdefault(path.suffix.lstrip("."), []).append(str(path))
    return files


def phase_floor(folder: Path, args: argparse.Namespace) -> dict:
    """A bare DuckDB scan of the backfill's files: every column read, nothing checked or stored."""
    import duckdb

    from lifecycle_assets.ingest.contract import ENTITIES

    shop = json.loads((folder / "landing" / "_manifest.json").read_text(encoding="utf-8"))
    backfill_last_day = (date.fromisoformat(shop["last_day"]) - timedelta(days=1)).isoformat()
    # A dirty shop's bad files are not part of the floor (a bare scan cannot read them).
    bad_files = {str(folder / "landing" / path) for paths in shop.get("injected", {}).get("files", {}).values() for path in paths}
    rows = 0
    started = time.perf_counter()
    with duckdb.connect() as con:
        con.execute(f"SET memory_limit = '{FLOOR_MEMORY_LIMIT}'")
        for entity, by_format in landing_files(folder / "landing", backfill_last_day).items():
            names = ENTITIES[entity].column_names
            columns = "{" + ", ".join(f"'{name}': 'VARCHAR'" for name in names) + "}"
            touched = "count(COLUMNS(*))"  # every column the file holds is read
            for file_format, files in by_format.items():
                files = [f for f in files if f not in bad_files]
                if file_format == "csv":
                    # An optional column (updated_at) is left out of most files: one read per header.
                    for header, same_header in _by_csv_header(files).items():
                        csv_columns = "{" + ", ".join(f"'{name}': 'VARCHAR'" for name in header) + "}"
                        reader = f"read_csv($files, columns = {csv_columns}, header = true, auto_detect = false)"
                        rows += con.execute(f"SELECT count(*), {touched} FROM {reader}", {"files": same_header}).fetchone()[0]
                elif file_format in ("parquet", "jsonl") and files:
                    reader = ("read_parquet($files, union_by_name = true)" if file_format == "parquet"
                              else f"read_json($files, columns = {columns}, format = 'newline_delimited')")
                    rows += con.execute(f"SELECT count(*), {touched} FROM {reader}", {"files": files}).fetchone()[0]
    return {"seconds": time.perf_counter() - started, "rows": rows}


def _by_csv_header(files: list[str]) -> dict[tuple[str, ...], list[str]]:
    """CSV files grouped by their header line (its column names), read from each file's first line."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for path in files:
        with open(path, encoding="utf-8") as handle:
            header = tuple(name.strip() for name in handle.readline().split(","))
        groups.setdefault(header, []).append(path)
    return groups


def _run(folder: Path, first_day: str, groups: tuple[str, ...], tags: dict[str, str], rerun_skipped: bool = False) -> dict:
    """One Dagster run of the project's own Definitions over the selected groups, with their checks.

    With ``rerun_skipped`` (a dirty shop), the assets a failed blocking check skipped (a customers file
    rejected as a whole stops orders, items and interactions) run in a second run, as an operator
    would after reading the check, so that every landing row is stored or quarantined."""
    os.environ["LIFECYCLE_LANDING_DIR"] = str(folder / "landing")
    os.environ["LIFECYCLE_DUCKDB_PATH"] = str(folder / "warehouse.duckdb")
    os.environ["LIFECYCLE_FIRST_LANDING_DAY"] = first_day
    import dagster as dg

    from lifecycle_assets.definitions import build_definitions

    definitions = build_definitions(first_day)
    graph = definitions.resolve_asset_graph()
    selection = dg.AssetSelection.groups(*groups).resolve(graph)
    job = definitions.resolve_implicit_global_asset_job_def()
    started = time.perf_counter()
    result = job.execute_in_process(asset_selection=list(selection), tags=tags, run_config=QUIET_RUN, raise_on_error=False)
    checks = [e.asset_check_evaluation_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    failed = [f"{c.asset_key.to_user_string()}:{c.check_name}" for c in checks if not c.passed]
    events = list(result.all_events)
    materialized = {e.asset_key for e in events if e.event_type_value == "ASSET_MATERIALIZATION"}
    skipped = [key for key in selection if key not in materialized]
    waiting = skipped
    while rerun_skipped and waiting:  # each rerun may meet the next entity's rejected file
        again = job.execute_in_process(asset_selection=waiting, tags=tags, run_config=QUIET_RUN, raise_on_error=False)
        events += list(again.all_events)
        checks += [e.asset_check_evaluation_data for e in again.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
        materialized |= {e.asset_key for e in again.all_events if e.event_type_value == "ASSET_MATERIALIZATION"}
        still = [key for key in waiting if key not in materialized]
        waiting = still if len(still) < len(waiting) else []
    failed = sorted({f"{c.asset_key.to_user_string()}:{c.check_name}" for c in checks if not c.passed})
    steps = {
        e.step_key: round(e.event_specific_data.duration_ms / 1000, 2)
        for e in events
        if e.event_type_value == "STEP_SUCCESS"
    }
    outcome = {"seconds": time.perf_counter() - started, "success": result.success, "checks": len(checks), "failed_checks": failed,
               "slowest_steps": sorted(steps.items(), key=lambda s: -s[1])[:5], "backtest_s": steps.get(BACKTEST_STEP)}
    if skipped:  # skipped by a failed blocking check, or after a step that failed (the run's success says which)
        outcome["not_materialized"] = [key.to_user_string() for key in skipped]
        outcome["not_materialized_run_again"] = rerun_skipped
    return outcome


def phase_ingest(folder: Path, args: argparse.Namespace) -> dict:
    shop = json.loads((folder / "landing" / "_manifest.json").read_text(encoding="utf-8"))
    backfill_last_day = (date.fromisoformat(shop["last_day"]) - timedelta(days=1)).isoformat()
    tags = {RANGE_START_TAG: shop["first_day"], RANGE_END_TAG: backfill_last_day}
    outcome = _run(folder, shop["first_day"], ("ingest", "quality"), tags, rerun_skipped=args.dirty)
    import duckdb

    with duckdb.connect(str(folder / "warehouse.duckdb"), read_only=True) as con:
        outcome["quarantined_rows"] = con.execute("SELECT count(*) FROM quality.quarantined_rows").fetchone()[0]
    return outcome


def phase_build(folder: Path, args: argparse.Namespace) -> dict:
    shop = json.loads((folder / "landing" / "_manifest.json").read_text(encoding="utf-8"))
    return _run(folder, shop["first_day"], ("lifecycle",), {})


def phase_daily(folder: Path, args: argparse.Namespace) -> dict:
    """The next day's run on top of the history: ingest its landing day, then build the models."""
    shop = json.loads((folder / "landing" / "_manifest.json").read_text(encoding="utf-8"))
    ingest = _run(folder, shop["first_day"], ("ingest", "quality"), {"dagster/partition": shop["last_day"]},
                  rerun_skipped=args.dirty)
    build = _run(folder, shop["first_day"], ("lifecycle",), {})
    return {
        "seconds": ingest["seconds"] + build["seconds"],
        "success": ingest["success"] and build["success"],
        "ingest_s": round(ingest["seconds"], 2),
        "build_s": round(build["seconds"], 2),
        "backtest_s": build["backtest_s"],
        "slowest_ingest_steps": ingest["slowest_steps"],
        "slowest_build_steps": build["slowest_steps"],
        "failed_checks": ingest["failed_checks"] + build["failed_checks"],
    }


def quarantine_vs_manifest(folder: Path) -> dict:
    """The quarantine after every landing day was ingested, beside what the generator says it injected."""
    import duckdb

    manifest = json.loads((folder / "landing" / "_manifest.json").read_text(encoding="utf-8"))
    injected_rows = {f"{entity} {reason}": n for reason, per_entity in manifest["injected"]["rows"].items()
                     for entity, n in per_entity.items()}
    injected_files = {reason: len(paths) for reason, paths in manifest["injected"]["files"].items()}
    with duckdb.connect(str(folder / "warehouse.duckdb"), read_only=True) as con:
        found_rows = dict(con.execute("SELECT entity || ' ' || reason, count(*) FROM quality.quarantined_rows GROUP BY ALL").fetchall())
        # A file's reason may carry its detail ("unreadable (line 3: ...)"): its first word is the reason.
        found_files = dict(con.execute(
            "SELECT split_part(reason, ' ', 1), count(*) FROM quality.quarantined_files GROUP BY ALL").fetchall())
    reasons = sorted(set(injected_rows) | set(found_rows))
    file_reasons = sorted(set(injected_files) | set(found_files))
    return {
        "rows": [(r, injected_rows.get(r, 0), found_rows.get(r, 0)) for r in reasons],
        "files": [(r, injected_files.get(r, 0), found_files.get(r, 0)) for r in file_reasons],
        "matches": injected_rows == found_rows and injected_files == found_files,
    }


# --- The parent: one child process per phase ------------------------------------------------------


def run_phase(name: str, folder: Path, args: argparse.Namespace) -> tuple[float, float, dict]:
    """Seconds of the phase's work (without the process's imports), its process's peak RSS (MB), and
    what the phase reported (with ``process_s``, the whole process's seconds)."""
    command = [sys.executable, __file__, "--phase", name, "--folder", str(folder), "--customers", str(args.customers),
               "--days", str(args.days), "--end-day", args.end_day, "--seed", str(args.seed),
               *(["--dirty"] if args.dirty else [])]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    spill = SpillWatch(folder / "warehouse.duckdb.tmp")
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    spill.stop()
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"phase {name} failed with exit code {child.returncode}")
    outcome = json.loads(output.strip().splitlines()[-1])
    outcome["process_s"] = round(time.perf_counter() - started, 1)
    # On a shared machine wall seconds depend on the load; the process's CPU seconds much less.
    outcome["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 1)
    outcome["peak_spill_mb"] = round(spill.peak / 2**20)
    print(f"{name} done: {outcome['seconds']:.1f} s, {outcome['cpu_s']} CPU s, peak RSS {usage.ru_maxrss / 1024:.0f} MB, "
          f"peak spill {outcome['peak_spill_mb']} MB", file=sys.stderr, flush=True)
    return outcome.pop("seconds"), usage.ru_maxrss / 1024, outcome


class SpillWatch:
    """The largest size DuckDB's spill folder beside the warehouse reached while a phase ran.

    Memory is bounded by ``memory_limit``; what goes beyond it goes to disk, so the disk a phase needs
    is part of what it costs (a 5M-customer ingest spills tens of GB)."""

    def __init__(self, folder: Path, every_s: float = 1.0) -> None:
        self.folder, self.peak, self._done = folder, 0, threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(every_s,), daemon=True)
        self._thread.start()

    def _watch(self, every_s: float) -> None:
        while not self._done.wait(every_s):
            try:
                size = sum(entry.stat().st_size for entry in os.scandir(self.folder) if entry.is_file())
            except OSError:  # not there yet, or a spill file removed while read
                continue
            self.peak = max(self.peak, size)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365, help="days of history ingested in one run (one more lands for the daily run)")
    parser.add_argument("--end-day", default="2026-11-21", help="the last landing day (the daily run's)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="keep landing/ and warehouse.duckdb in this folder")
    parser.add_argument("--dirty", action="store_true", help="land the generator's bad rows and files; compare the quarantine with its manifest")
    parser.add_argument("--phases", default=",".join(PHASES),
                        help="the phases to run, comma-separated (those not starting with generate need --keep DIR from an earlier run)")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        outcome = globals()[f"phase_{args.phase}"](args.folder, args)
        print(json.dumps(outcome, default=str))
        return

    chosen = [name for name in PHASES if name in args.phases.split(",")]
    if chosen != list(PHASES) and not args.keep:
        parser.error("--phases needs --keep DIR (the phases not run now ran earlier into DIR)")
    with tempfile.TemporaryDirectory(prefix="scale_benchmark_") as temporary:
        folder = args.keep or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        if "ingest" in chosen:  # an ingest starts from an empty warehouse
            (folder / "warehouse.duckdb").unlink(missing_ok=True)
            (folder / "warehouse.duckdb.wal").unlink(missing_ok=True)
        results = {name: run_phase(name, folder, args) for name in chosen}
        quarantine = quarantine_vs_manifest(folder) if args.dirty and "daily" in chosen else None

    shop = json.loads((folder / "landing" / "_manifest.json").read_text(encoding="utf-8")) if args.keep else results["generate"][2]
    landing_rows = sum(shop["rows"].values())
    print(f"sample shop: {args.customers:,} customers, {args.days} + 1 landing days, {landing_rows:,} landing rows"
          + (f", {results['generate'][2]['files']:,} files" if "generate" in results else ""))
    print(f"{'phase':<10} {'seconds':>8} {'peak RSS MB':>12}  notes")
    for name in chosen:
        seconds, rss, outcome = results[name]
        notes = {k: v for k, v in outcome.items() if k not in ("rows", "first_day", "last_day")}
        print(f"{name:<10} {seconds:>8.1f} {rss:>12.0f}  {json.dumps(notes, default=str)}")
    if "ingest" in results and "floor" in results:
        ingest_s, floor_s = results["ingest"][0], results["floor"][0]
        print(f"ingest / floor: {ingest_s / floor_s:.1f}x (floor scanned {results['floor'][2]['rows']:,} rows)")
    if quarantine:
        print(f"{'quarantined rows: entity reason':<55} {'injected':>9} {'found':>9}")
        for reason, injected, found in quarantine["rows"]:
            print(f"{reason:<55} {injected:>9,} {found:>9,}")
        print(f"{'quarantined files: reason':<55} {'injected':>9} {'found':>9}")
        for reason, injected, found in quarantine["files"]:
            print(f"{reason:<55} {injected:>9,} {found:>9,}")
        print(f"quarantine equals the generator's manifest: {quarantine['matches']}")
    for name in ("ingest", "build", "daily"):
        if name in results and (not results[name][2]["success"] or results[name][2]["failed_checks"]):
            print(f"WARNING: {name} did not fully succeed: {results[name][2]['failed_checks']}")
    print(json.dumps({
        "customers": args.customers,
        "landing_rows": landing_rows,
        **{f"{name}_s": round(results[name][0], 1) if name in results else None for name in PHASES},
        "peak_rss_mb": round(max(rss for _, rss, _ in results.values())),
        "cpu_s": {name: results[name][2]["cpu_s"] for name in chosen},
        "peak_spill_mb": {name: results[name][2]["peak_spill_mb"] for name in chosen},
        "backtest_s": results["build"][2]["backtest_s"] if "build" in results else None,
        **({"quarantine_matches_manifest": quarantine["matches"]} if quarantine else {}),
    }))


if __name__ == "__main__":
    main()
