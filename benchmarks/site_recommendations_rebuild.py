"""Rebuild the site recommendations on a copy of a built warehouse: seconds and CPU seconds per step, and
whether the table equals the one another version of the SQL builds.

    .venv/bin/python benchmarks/site_recommendations_rebuild.py --warehouse DIR/warehouse.duckdb
        [--reference-sql OLD/site_recommendations.sql]

The warehouse comes from e.g. `benchmarks/scale_benchmark.py --customers 100000 --keep DIR`; it is
copied to a temporary folder (deleted afterwards), never changed. Times marts.site_recommendations for every visitor
(`run_model`, full refresh), the recommendation files and the recommendation backtest in one warm process. With
`--reference-sql` (e.g. the file from an earlier commit: `git show REV:dbt_like_sql/marts/site_recommendations.sql`),
that SQL is built too and both tables are compared with EXCEPT ALL both ways: a change meant to make
the model cheaper must leave both counts 0. Also prints a SHA-256 per written file (except the manifest, which holds
the build time) and every backtest figure, so that runs of two versions can be compared: run this script of one
version with `PYTHONPATH=<a checkout of the other>` to measure the other's code on the same warehouse. Prints the
figures, then one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from lifecycle_assets.models import recommendations
from lifecycle_assets.models.settings import LifecycleSettings
from lifecycle_assets.models.sql_models import SQL_MODELS_DIR, parse_model, run_model

MEMORY_LIMIT = "6GB"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(figures: dict[str, float], name: str, step) -> object:
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = step()
    figures[f"{name}_s"] = round(time.perf_counter() - wall, 2)
    figures[f"{name}_cpu_s"] = round(cpu_seconds() - cpu, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--reference-sql", type=Path)
    arguments = parser.parse_args()
    model = parse_model(SQL_MODELS_DIR / "marts" / "site_recommendations.sql")
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="site_recommendations_") as folder:
        warehouse = Path(folder) / "warehouse.duckdb"
        shutil.copyfile(arguments.warehouse, warehouse)
        connection = duckdb.connect(str(warehouse), config={"memory_limit": MEMORY_LIMIT})
        settings = LifecycleSettings()
        as_of = settings.resolve_as_of(connection)
        parameters = settings.sql_parameters(as_of)
        connection.execute("select $as_of::date", {"as_of": as_of}).fetchall()  # the client's first bound parameter imports pandas
        if arguments.reference_sql:
            root = Path(folder) / "reference"
            (root / "marts").mkdir(parents=True)
            shutil.copyfile(arguments.reference_sql, root / "marts" / "site_recommendations.sql")
            reference = parse_model(root / "marts" / "site_recommendations.sql", root)
            timed(figures, "reference_model", lambda: run_model(reference, connection, parameters))
            connection.execute("create table main.reference_recommendations as select * from marts.site_recommendations")
        built = timed(figures, "model", lambda: run_model(model, connection, parameters, full_refresh=True))  # every visitor
        figures["rows"] = built["row_count"]
        if arguments.reference_sql:
            for name, left, right in (("only_new", "marts.site_recommendations", "main.reference_recommendations"),
                                      ("only_reference", "main.reference_recommendations", "marts.site_recommendations")):
                figures[f"rows_{name}"] = connection.execute(
                    f"select count(*) from (select * from {left} except all select * from {right})"
                ).fetchone()[0]
        files = Path(folder) / "files"
        timed(figures, "files", lambda: recommendations.export_recommendations(connection, files, as_of))
        for path in sorted(files.glob("*")):
            if path.name != recommendations.MANIFEST_NAME:
                figures[f"sha256/{path.name}"] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        backtest = timed(figures, "backtest", lambda: recommendations.run_recommendation_backtest(connection, settings, as_of))
        for name, value in dataclasses.asdict(backtest).items():
            figures[f"backtest/{name}"] = value
        connection.close()
    figures["code"] = str(Path(recommendations.__file__).resolve().parents[2])
    figures["load_average"] = round(os.getloadavg()[0], 2)
    for name, value in figures.items():
        print(f"{name:>24}  {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
