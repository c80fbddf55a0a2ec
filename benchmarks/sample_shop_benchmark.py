"""Time and peak memory of the sample shop generator.

    .venv/bin/python benchmarks/sample_shop_benchmark.py --customers 100000 [--days 365] [--dirty]

Writes the shop into a temporary folder (deleted afterwards) and prints seconds, rows and files
written, bytes on disk and the peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from lifecycle_assets.sample_data.sample_shop import generate_sample_shop


def peak_rss_mb() -> float:
    """Peak resident set size of this process (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--end-day", default="2024-12-31")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dirty", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sample_shop_benchmark_") as folder:
        root = Path(folder) / "landing"
        started = time.perf_counter()
        summary = generate_sample_shop(root, args.customers, args.days, args.end_day, args.seed, args.dirty)
        seconds = time.perf_counter() - started
        size_mb = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1024**2
    rows = sum(summary["rows"].values())
    print(f"customers={args.customers:,} days={args.days} dirty={args.dirty}")
    print(f"seconds={seconds:.1f} peak_rss_mb={peak_rss_mb():.0f} files={summary['files']} on_disk_mb={size_mb:.0f}")
    print(f"rows={rows:,} ({', '.join(f'{entity} {n:,}' for entity, n in summary['rows'].items())})")
    print(f"rows_per_second={rows / seconds:,.0f}")


if __name__ == "__main__":
    main()
