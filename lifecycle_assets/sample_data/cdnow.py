"""Land the CDNOW purchase history (a real shop's data, 1997-1998) in the landing-zone contract.

CDNOW is the classic customer-base data set: every purchase of the 23,570 customers who first
bought at CDNOW in the first quarter of 1997, until mid-1998. It lets the lifecycle models run on
real buying behaviour instead of the simulated sample shop. The file ships with the PyPI package
``lifetimes``; we only read its data file and never import the package (its import breaks with
current numpy/pandas). What is real and what is synthetic is listed in ``docs/cdnow.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import time
from pathlib import Path

import polars as pl

from lifecycle_assets.ingest.contract import ENTITIES
from lifecycle_assets.sample_data.manifest import write_manifest

PRODUCT_ID = "P-CD"
# One line of CDNOW_master.txt: customer id, purchase date, number of CDs, dollar value.
LINE_PATTERN = r"^\s*(\d+)\s+(\d{8})\s+(\d+)\s+(\d+(?:\.\d+)?)\s*$"


class CdnowFormatError(ValueError):
    """A line of the source file is not a CDNOW purchase line."""


def default_source() -> Path:
    """CDNOW_master.txt inside the installed ``lifetimes`` package, found without importing it."""
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the CDNOW data comes with the 'lifetimes' package, which is not installed")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "CDNOW_master.txt"


def read_purchases(source: Path) -> pl.DataFrame:
    """The purchase lines with their 1-based line number in the file; any malformed line is an error."""
    lines = pl.Series("text", source.read_text(encoding="ascii").splitlines())
    frame = pl.DataFrame({"line": pl.int_range(1, lines.len() + 1, eager=True), "text": lines})
    frame = frame.filter(pl.col("text").str.strip_chars() != "")
    if frame.height and "customer_id" in frame["text"][0]:
        frame = frame.slice(1)  # the header line
    parsed = frame.with_columns(pl.col("text").str.extract_groups(LINE_PATTERN).alias("fields")).unnest("fields")
    parsed = parsed.rename({"1": "cdnow_id", "2": "date", "3": "cds", "4": "dollars"})
    broken = parsed.filter(pl.col("cdnow_id").is_null())
    if broken.height:
        line, text = broken.row(0)[:2]
        raise CdnowFormatError(
            f"{source}: line {line} is not '<customer id> <YYYYMMDD> <number of CDs> <dollar value>': {text!r} "
            f"({broken.height} such lines)"
        )
    return parsed.select(
        "line",
        "cdnow_id",
        day=pl.col("date").str.to_date("%Y%m%d"),
        quantity=pl.col("cds").cast(pl.Int64),
        # Cents, so that amounts are exact.
        cents=(pl.col("dollars").cast(pl.Float64) * 100).round().cast(pl.Int64),
    )


def _amount(cents: pl.Expr) -> pl.Expr:
    return pl.format("{}.{}", (cents // 100).cast(pl.String), (cents % 100).cast(pl.String).str.zfill(2))


def convert_cdnow(landing_root: str | Path, source: Path | None = None) -> dict:
    """Write CDNOW as landing days under ``landing_root``; returns rows per entity and the day range.

    Existing entity folders under ``landing_root`` are removed first (CDNOW replaces whatever
    sample was there), files outside them are left alone.
    """
    started = time.perf_counter()
    root = Path(landing_root)
    source = Path(source) if source is not None else default_source()
    purchases = read_purchases(source)
    if purchases.is_empty():
        raise CdnowFormatError(f"{source}: no purchase lines")

    # Orders keep the file's order; a customer's orders of one day get successive minutes so that
    # their sequence survives.
    purchases = purchases.sort("line").with_columns(
        order_id=pl.format("CDNOW-O{}", pl.col("line").cast(pl.String).str.zfill(6)),
        customer_id=pl.format("CDNOW-C{}", pl.col("cdnow_id").str.zfill(5)),
        minute=pl.int_range(pl.len()).over("cdnow_id", "day"),
    ).with_columns(
        ordered_at=(pl.col("day").cast(pl.Datetime("us")) + pl.duration(hours=12, minutes=pl.col("minute"))).dt.strftime(
            "%Y-%m-%dT%H:%M:%S"
        ),
    )
    customers = (
        purchases.group_by("customer_id", "cdnow_id")
        .agg(first_day=pl.col("day").min())
        .sort("customer_id")
        .select(
            "customer_id",
            email=pl.format("cdnow-{}@example.com", pl.col("cdnow_id").str.zfill(5)),
            first_name=pl.lit(None, dtype=pl.String),
            # Registered just before the first purchase: CDNOW only knows purchase dates.
            registered_at=pl.col("first_day").dt.strftime("%Y-%m-%d") + pl.lit("T11:55:00"),
            birthday=pl.lit(None, dtype=pl.String),
            timezone=pl.lit(None, dtype=pl.String),
            marketing_consent=pl.lit("true"),
            day=pl.col("first_day"),
        )
    )
    orders = purchases.select(
        "order_id",
        "customer_id",
        "ordered_at",
        status=pl.lit("completed"),
        total_amount=_amount(pl.col("cents")),
        day="day",
    )
    # unit_price is the CD price the order implies, rounded to cents; total_amount stays the
    # source's exact dollar value.
    items = purchases.select(
        "order_id",
        line_number=pl.lit("1"),
        product_id=pl.lit(PRODUCT_ID),
        quantity=pl.col("quantity").cast(pl.String),
        unit_price=_amount(
            pl.when(pl.col("quantity") > 0).then((pl.col("cents") / pl.col("quantity")).round().cast(pl.Int64)).otherwise(0)
        ),
        day="day",
    )
    first_day = purchases["day"].min()
    median_cd_cents = int(
        purchases.filter(pl.col("quantity") > 0).select((pl.col("cents") / pl.col("quantity")).median()).item()
    )
    products = pl.DataFrame(
        {
            "product_id": [PRODUCT_ID],
            "name": ["Compact disc"],
            "category": ["music"],
            "price": [f"{median_cd_cents // 100}.{median_cd_cents % 100:02d}"],
            "rebuy_interval_days": [None],
            "url": [None],  # CDNOW knows no product pages or images
            "image_url": [None],
            "day": [first_day],
        },
        schema_overrides={"rebuy_interval_days": pl.String, "url": pl.String, "image_url": pl.String},
    )

    for entity in ENTITIES:
        if (root / entity).exists():
            shutil.rmtree(root / entity)
    frames = {"customers": customers, "products": products, "orders": orders, "order_items": items}
    files = 0
    for entity, frame in frames.items():
        columns = ENTITIES[entity].column_names
        for (day,), part in frame.partition_by("day", as_dict=True, maintain_order=True).items():
            folder = root / entity / f"date={day.isoformat()}"
            folder.mkdir(parents=True, exist_ok=True)
            part.select(c for c in columns if c in part.columns).write_csv(folder / f"cdnow_{entity}_{day.isoformat()}.csv")
            files += 1

    summary = {
        "source": "cdnow",
        "source_file": str(source),
        "first_day": first_day.isoformat(),
        "last_day": purchases["day"].max().isoformat(),
        "rows": {entity: frame.height for entity, frame in frames.items()},
        "files": files,
        "zero_value_orders": int((purchases["cents"] == 0).sum()),
    }
    return write_manifest(root, summary, started)


def main(argv: list[str] | None = None) -> None:
    """``python -m lifecycle_assets.sample_data.cdnow``: land CDNOW in the landing zone."""
    from lifecycle_assets.environment import landing_dir

    parser = argparse.ArgumentParser(prog="python -m lifecycle_assets.sample_data.cdnow", description=main.__doc__)
    parser.add_argument("--landing", type=Path, default=None, help="landing zone root (default: LIFECYCLE_LANDING_DIR or data/landing)")
    parser.add_argument("--source", type=Path, default=None, help="CDNOW_master.txt (default: the copy in the lifetimes package)")
    args = parser.parse_args(argv)
    landing = args.landing if args.landing is not None else landing_dir()
    summary = convert_cdnow(landing, args.source)
    print(f"CDNOW in {landing}: {summary['first_day']} .. {summary['last_day']}, {summary['files']} files, {summary['seconds']} s")
    for entity, rows in summary["rows"].items():
        print(f"  {entity:<13} {rows:>8,} rows")
    print(f"  {summary['zero_value_orders']} orders with a dollar value of 0.00 kept as free orders")


if __name__ == "__main__":
    main(sys.argv[1:])
