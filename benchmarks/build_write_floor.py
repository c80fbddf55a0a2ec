"""What writing a full build's tables costs on this machine, with nothing computed: the floor under a full build.

    .venv/bin/python benchmarks/build_write_floor.py WAREHOUSE

WAREHOUSE is a built warehouse (`scale_benchmark.py --keep DIR` leaves one in DIR). Every table of its
staging, intermediate and marts schemas is copied, largest first, into a new DuckDB file beside no
other work (`create table ... as select * from` the warehouse attached read-only, then a checkpoint):
the rows a full build has to write, read from storage already computed. A full build computes them
as well, so it cannot take less. The warehouse is only read. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import duckdb

SCHEMAS = ("staging", "intermediate", "marts")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("warehouse", type=Path, help="a built warehouse (DuckDB file), only read")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="build_write_floor_") as folder:
        connection = duckdb.connect(str(Path(folder) / "copy.duckdb"))
        connection.execute(f"attach '{args.warehouse}' as built (read_only)")
        tables = connection.execute(
            "select schema_name, table_name, estimated_size from duckdb_tables() "
            f"where database_name = 'built' and schema_name in {SCHEMAS} order by estimated_size desc"
        ).fetchall()
        started = time.perf_counter()
        rows = 0
        for schema, name, size in tables:
            connection.execute(f"create schema if not exists {schema}")
            table_started = time.perf_counter()
            connection.execute(f"create table {schema}.{name} as select * from built.{schema}.{name}")
            rows += size
            print(f"{time.perf_counter() - table_started:7.2f} s  {schema}.{name}  {size:,} rows")
        connection.execute("checkpoint")
        seconds = time.perf_counter() - started
        connection.close()
    print(f"{len(tables)} tables, {rows:,} rows written in {seconds:.1f} s")
    print(json.dumps({"tables": len(tables), "rows": rows, "seconds": round(seconds, 1)}))


if __name__ == "__main__":
    main()
