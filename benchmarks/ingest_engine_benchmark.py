"""The ingest engine against the floor, without Dagster: engine-to-engine.

    .venv/bin/python benchmarks/ingest_engine_benchmark.py --folder DIR [--statements] [--slice-mb N]

DIR is a folder the scale benchmark generated (``scale_benchmark.py --keep DIR`` or its ``--phase
generate``): ``DIR/landing`` with ``_manifest.json``. In one child process, ``ingest_days`` loads,
validates and stores all five entities over the backfill range (every landing day but the last, as the
scale benchmark's one-run ingest) into a fresh warehouse with DuckDB's ``memory_limit`` of the ingest
(2 GB); in another, the scale benchmark's floor phase (its own function) scans the same files. Dagster's per-partition
bookkeeping and the quality checks are left out, so the ratio is the ingest's own work against a bare scan. A
third child, the *store floor*, reads the same files and stores their rows cast to the contract's types in a
fresh DuckDB file, without any rule: what any ingest that keeps the rows costs at least.
Prints seconds and CPU seconds of each side's work (imports excluded: this machine byte-compiles
nothing, so imports cost seconds) and per entity, and the peak size of DuckDB's spill folder. ``--slice-mb``
reads the range that many MB of landing files at a time (default: the ingest's own). The last line is one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
MEMORY_LIMIT = "2GB"


class TimedConnection:
    """The connection, with the CPU seconds of each statement it executes (for ``--statements``)."""

    def __init__(self, con) -> None:
        self.con, self.statements = con, []

    def __getattr__(self, name: str):
        attribute = getattr(self.con, name)
        if name not in ("execute", "executemany"):
            return attribute

        def timed(sql: str, *args, **kwargs):
            cpu = _cpu()
            result = attribute(sql, *args, **kwargs)
            text = re.sub(r"(read_\w+)\(\[.*", r"\1([...])", " ".join(sql.split()))
            self.statements.append((round(_cpu() - cpu, 2), text[:100]))
            return result

        return timed


def engine(folder: Path, statements: bool = False, slice_mb: int | None = None) -> dict:
    """ingest_days over the backfill range, entity by entity (the contract's order), one connection."""
    import duckdb

    from lifecycle_assets.ingest.contract import ENTITIES
    from lifecycle_assets.ingest.pipeline import DEFAULT_SLICE_BYTES, configure, ingest_days

    sys.path.insert(0, str(HERE))
    from scale_benchmark import SpillWatch

    shop = json.loads((folder / "landing" / "_manifest.json").read_text(encoding="utf-8"))
    first, last = date.fromisoformat(shop["first_day"]), date.fromisoformat(shop["last_day"]) - timedelta(days=1)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    warehouse = folder / "engine_benchmark.duckdb"
    for path in (warehouse, Path(f"{warehouse}.wal")):
        path.unlink(missing_ok=True)
    entities, rows = {}, 0
    slice_bytes = slice_mb * 2**20 if slice_mb else DEFAULT_SLICE_BYTES
    spill = SpillWatch(Path(f"{warehouse}.tmp"))
    started, cpu_started = time.perf_counter(), _cpu()
    with duckdb.connect(str(warehouse)) as con:
        configure(con, MEMORY_LIMIT)
        for name, entity in ENTITIES.items():
            began, cpu = time.perf_counter(), _cpu()
            timed = TimedConnection(con) if statements else con
            outcome = ingest_days(timed, folder / "landing", entity, days, "engine-benchmark", slice_bytes)
            entities[name] = {"seconds": round(time.perf_counter() - began, 2), "cpu_s": round(_cpu() - cpu, 2),
                              "stored": outcome.rows_stored, "quarantined": outcome.rows_quarantined}
            if statements:
                entities[name]["statements"] = sorted(timed.statements, reverse=True)[:8]
            rows += outcome.rows_stored + outcome.rows_quarantined
    seconds, cpu_s = time.perf_counter() - started, _cpu() - cpu_started
    spill.stop()
    for path in (warehouse, Path(f"{warehouse}.wal")):
        path.unlink(missing_ok=True)
    return {"seconds": seconds, "cpu_s": cpu_s, "rows": rows, "entities": entities, "slice_mb": slice_bytes // 2**20,
            "peak_spill_mb": round(spill.peak / 2**20)}


def floor(folder: Path) -> dict:
    """The scale benchmark's floor phase, with the CPU seconds of its work (imports excluded)."""
    sys.path.insert(0, str(HERE))
    from scale_benchmark import phase_floor

    cpu_started = _cpu()
    outcome = phase_floor(folder, argparse.Namespace())
    return outcome | {"cpu_s": _cpu() - cpu_started}


def store_floor(folder: Path) -> dict:
    """The floor's files read the same way and their rows stored, cast to the contract's types, in a fresh DuckDB
    file: no rule, no lineage, no quarantine. What any ingest that keeps the rows costs at least."""
    import duckdb

    from lifecycle_assets.ingest.contract import ENTITIES
    from lifecycle_assets.ingest.validation import SQL_TYPES

    sys.path.insert(0, str(HERE))
    from scale_benchmark import FLOOR_MEMORY_LIMIT, _by_csv_header, landing_files

    shop = json.loads((folder / "landing" / "_manifest.json").read_text(encoding="utf-8"))
    backfill_last_day = (date.fromisoformat(shop["last_day"]) - timedelta(days=1)).isoformat()
    bad_files = {str(folder / "landing" / path) for paths in shop.get("injected", {}).get("files", {}).values() for path in paths}
    warehouse = folder / "store_floor.duckdb"
    warehouse.unlink(missing_ok=True)
    rows, cpu_started, started = 0, _cpu(), time.perf_counter()
    with duckdb.connect(str(warehouse)) as con:
        con.execute(f"SET memory_limit = '{FLOOR_MEMORY_LIMIT}'")
        for entity, by_format in landing_files(folder / "landing", backfill_last_day).items():
            columns = ENTITIES[entity].columns
            con.execute(f"CREATE TABLE {entity} ({', '.join(f'{c.name} {SQL_TYPES[c.type]}' for c in columns)})")
            for file_format, files in by_format.items():
                files = [f for f in files if f not in bad_files]
                if file_format == "csv":
                    for header, same_header in _by_csv_header(files).items():
                        read = "{" + ", ".join(f"'{name}': 'VARCHAR'" for name in header) + "}"
                        values = ", ".join(c.name if c.name in header else "NULL" for c in columns)
                        con.execute(f"INSERT INTO {entity} SELECT {values} FROM read_csv($files, columns = {read}, "
                                    "header = true, auto_detect = false)", {"files": same_header})
                elif file_format in ("parquet", "jsonl") and files:
                    read = "{" + ", ".join(f"'{c.name}': 'VARCHAR'" for c in columns) + "}"
                    reader = ("read_parquet($files, union_by_name = true, hive_partitioning = false)" if file_format == "parquet"
                              else f"read_json($files, columns = {read}, format = 'newline_delimited', hive_partitioning = false)")
                    con.execute(f"INSERT INTO {entity} BY NAME SELECT * FROM {reader}", {"files": files})
            rows += con.execute(f"SELECT count(*) FROM {entity}").fetchone()[0]
    warehouse.unlink(missing_ok=True)
    return {"seconds": time.perf_counter() - started, "cpu_s": _cpu() - cpu_started, "rows": rows}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(command: list[str]) -> tuple[dict, float]:
    """What the child printed last (one JSON object) and its CPU seconds."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command} failed")
    return json.loads(output.strip().splitlines()[-1]), usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--statements", action="store_true", help="also print each entity's costliest SQL statements (CPU s)")
    parser.add_argument("--slice-mb", type=int, help="MB of landing files read at a time (default: the ingest's own)")
    parser.add_argument("--only", choices=("engine", "floor", "store"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        work = {"engine": lambda: engine(args.folder, args.statements, args.slice_mb), "floor": lambda: floor(args.folder),
                "store": lambda: store_floor(args.folder)}
        print(json.dumps(work[args.only]()))
        return

    load = os.getloadavg()[0]
    scan, scan_process_cpu = child([sys.executable, __file__, "--folder", str(args.folder), "--only", "floor"])
    store, store_process_cpu = child([sys.executable, __file__, "--folder", str(args.folder), "--only", "store"])
    ingest, ingest_process_cpu = child([sys.executable, __file__, "--folder", str(args.folder), "--only", "engine",
                                        *(["--statements"] if args.statements else []),
                                        *(["--slice-mb", str(args.slice_mb)] if args.slice_mb else [])])
    print(f"load average before: {load:.2f}, after: {os.getloadavg()[0]:.2f}")
    print(f"{'entity':<14} {'seconds':>8} {'CPU s':>7} {'stored':>10} {'quarantined':>12}")
    for name, figures in ingest["entities"].items():
        print(f"{name:<14} {figures['seconds']:>8.2f} {figures['cpu_s']:>7.2f} {figures['stored']:>10,} {figures['quarantined']:>12,}")
        for cpu, statement in figures.pop("statements", []):
            print(f"    {cpu:6.2f} CPU s  {statement}")
    for label, figures, process_cpu in (("ingest_days, all entities", ingest, ingest_process_cpu), ("floor (bare scan)", scan, scan_process_cpu),
                                        ("store floor (scan + store)", store, store_process_cpu)):
        print(f"{label:<26} {figures['seconds']:6.2f} s, {figures['cpu_s']:6.2f} CPU s (process with imports "
              f"{process_cpu:.1f} CPU s), {figures['rows']:,} rows")
    ratio_s, ratio_cpu = ingest["seconds"] / scan["seconds"], ingest["cpu_s"] / scan["cpu_s"]
    print(f"ingest / floor: {ratio_s:.1f}x in seconds, {ratio_cpu:.1f}x in CPU seconds; slices of {ingest['slice_mb']} MB, "
          f"peak spill {ingest['peak_spill_mb']} MB")
    print(f"store floor / floor: {store['seconds'] / scan['seconds']:.1f}x in seconds, {store['cpu_s'] / scan['cpu_s']:.1f}x in CPU "
          f"seconds; ingest / store floor: {ingest['seconds'] / store['seconds']:.1f}x, {ingest['cpu_s'] / store['cpu_s']:.1f}x")
    print(json.dumps({
        "ingest_s": round(ingest["seconds"], 2), "ingest_cpu_s": round(ingest["cpu_s"], 2),
        "floor_s": round(scan["seconds"], 2), "floor_cpu_s": round(scan["cpu_s"], 2),
        "store_floor_s": round(store["seconds"], 2), "store_floor_cpu_s": round(store["cpu_s"], 2),
        "ratio_s": round(ratio_s, 2), "ratio_cpu": round(ratio_cpu, 2),
        "process_cpu_s": {"ingest": round(ingest_process_cpu, 1), "floor": round(scan_process_cpu, 1),
                          "store": round(store_process_cpu, 1)},
        "landing_rows": ingest["rows"], "entities": ingest["entities"], "slice_mb": ingest["slice_mb"],
        "peak_spill_mb": ingest["peak_spill_mb"], "load_average": round(load, 2),
    }))


if __name__ == "__main__":
    main()
