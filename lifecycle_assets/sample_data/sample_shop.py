"""A synthetic online shop that lands its daily exports exactly as the data contract says.

The entry point: ``generate_sample_shop`` and the console script ``lifecycle-sample-shop``.
Customers are simulated in chunks (``simulation``), spooled to disk and written day by day
(``landing_files``), so memory stays bounded however many customers the shop has. With
``dirty=True`` it also lands bad rows and bad files (``dirty``), and lists them in
``_manifest.json`` so the quarantine can be checked against what was injected.
See ``docs/sample_shop.md``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from lifecycle_assets.sample_data.dirty import plan_bad_rows, write_bad_files
from lifecycle_assets.sample_data.landing_files import ENTITY_ORDER, LandingWriter, Spool
from lifecycle_assets.sample_data.manifest import MANIFEST_NAME, write_manifest
from lifecycle_assets.sample_data.letter_effect import LetterEffect
from lifecycle_assets.sample_data.simulation import CHUNK_CUSTOMERS, ShopPlan, simulate_chunk


def generate_sample_shop(
    landing_root: str | Path,
    customers: int,
    days: int,
    end_day: str | date | None = None,
    seed: int = 7,
    dirty: bool = False,
    chunk_customers: int = CHUNK_CUSTOMERS,
    letter_effect: float = 0.0,
    workers: int | None = None,
) -> dict:
    """Write ``days`` landing days of a shop with ``customers`` registrations under ``landing_root``.

    Only the entity folders (``customers``, ``products``, ...) and ``_manifest.json`` are written;
    existing entity folders are removed first so a re-run never mixes two samples. Returns (and
    writes to ``_manifest.json``) first/last day, rows per entity, number of files and, when
    ``dirty``, exactly which bad rows and files were injected. ``chunk_customers`` is part of the
    recipe: the same seed and chunk size write the same files. ``letter_effect``: welcome letter
    recipients buy with this extra probability within a week (sample_data/letter_effect.py).
    ``workers``: threads writing the files (default: the cores this process may use); the files
    are the same whatever their number.
    """
    if customers < 1 or days < 1:
        raise ValueError("customers and days must be at least 1")
    started = time.perf_counter()
    root = Path(landing_root)
    last_day = _parse_day(end_day)
    first_day = last_day - timedelta(days=days - 1)
    base_epoch = int(datetime(first_day.year, first_day.month, first_day.day, tzinfo=timezone.utc).timestamp())
    plan = ShopPlan.draw(
        seed, customers, days, base_epoch, chunk_customers, LetterEffect(letter_effect) if letter_effect else None
    )

    for entity in ENTITY_ORDER:
        folder = root / entity
        if folder.exists():
            shutil.rmtree(folder)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sample_shop_spool_") as spool_folder:
        spool = Spool(Path(spool_folder), plan)
        for chunk in range(plan.chunks):
            spool.put(chunk, simulate_chunk(plan, chunk))
        bad_rows, injected_rows = plan_bad_rows(spool.main_rows_per_day, seed) if dirty else (None, {})
        writer = LandingWriter(root, plan, spool, bad_rows)
        files_written, rows_written = writer.write_all(workers or len(os.sched_getaffinity(0)))

    injected: dict = {}
    if dirty:
        bad_files = write_bad_files(root, days, base_epoch)
        injected = {"rows": injected_rows, "files": bad_files, "row_locations": writer.row_locations}
        files_written += sum(len(paths) for paths in bad_files.values())
    summary = {
        "first_day": first_day.isoformat(),
        "last_day": last_day.isoformat(),
        "customers": customers,
        "days": days,
        "seed": seed,
        "dirty": dirty,
        "letter_effect": letter_effect,
        "rows": rows_written,
        "files": files_written,
        "injected": injected,
    }
    return write_manifest(root, summary, started)


def main(argv: list[str] | None = None) -> None:
    """Console script ``lifecycle-sample-shop``: write a sample shop into the landing zone."""
    from lifecycle_assets.environment import landing_dir

    parser = argparse.ArgumentParser(prog="lifecycle-sample-shop", description=main.__doc__)
    parser.add_argument("--landing", type=Path, default=None, help="landing zone root (default: LIFECYCLE_LANDING_DIR or data/landing)")
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--end-day", default=None, help="last landing day, YYYY-MM-DD (default: yesterday UTC)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dirty", action="store_true", help="also land bad rows and bad files (listed in _manifest.json)")
    parser.add_argument("--letter-effect", type=float, default=0.0,
                        help="welcome letter recipients buy with this extra probability within a week (default 0)")
    args = parser.parse_args(argv)
    landing = args.landing if args.landing is not None else landing_dir()
    summary = generate_sample_shop(
        landing, args.customers, args.days, args.end_day, args.seed, args.dirty, letter_effect=args.letter_effect
    )
    print(f"sample shop in {landing}: {summary['first_day']} .. {summary['last_day']}, "
          f"{summary['files']} files, {summary['seconds']} s")
    for entity, rows in summary["rows"].items():
        print(f"  {entity:<13} {rows:>12,} rows")
    if summary["injected"]:
        bad_rows = sum(sum(per_entity.values()) for per_entity in summary["injected"]["rows"].values())
        bad_files = sum(len(paths) for paths in summary["injected"]["files"].values())
        print(f"  injected: {bad_rows} bad rows, {bad_files} bad files (see {MANIFEST_NAME})")


def _parse_day(value: str | date | None) -> date:
    if value is None:
        return datetime.now(timezone.utc).date() - timedelta(days=1)
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(value)


if __name__ == "__main__":
    main(sys.argv[1:])
