"""The one place that decides where things live and which settings come from the environment.

Every path has a project-local default so that `make demo` works on a fresh clone; an operator
points the same code at production storage with environment variables.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FIRST_LANDING_DAY = "2024-01-01"


def landing_dir() -> Path:
    return Path(os.environ.get("LIFECYCLE_LANDING_DIR", PROJECT_ROOT / "data" / "landing"))


def warehouse_path() -> Path:
    return Path(os.environ.get("LIFECYCLE_DUCKDB_PATH", PROJECT_ROOT / "data" / "warehouse" / "lifecycle.duckdb"))


def build_memory_limit() -> str:
    """DuckDB's memory_limit while models build; beyond it DuckDB spills to disk (the ingest has its own)."""
    return os.environ.get("LIFECYCLE_BUILD_MEMORY_LIMIT", "4GB")


def build_keys_per_batch() -> int:
    """How many keys a model built by key (``incremental_key``) recomputes in one statement.

    More keys than this (a first build, a full refresh, a large backfill) are built in batches of keys:
    DuckDB cannot spill every aggregate state, and stg_customers of 5M customers in one statement ran
    out of the 4 GB build memory limit."""
    return int(os.environ.get("LIFECYCLE_BUILD_KEYS_PER_BATCH", "1000000"))


def build_rows_per_slice() -> int:
    """How many raw rows a model built by landing day (``incremental_by``) reads in one statement when it rebuilds
    many days (a first build, a full refresh, a day re-ingested long ago): more go a slice of days at a time. The
    first build of a 5M-customer shop's 84M events in one statement spilled 25 GB to disk; a 1M shop's 16.8M events
    in slices of 4M rows: no spill and a third less CPU than one statement."""
    return int(os.environ.get("LIFECYCLE_BUILD_ROWS_PER_SLICE", "4000000"))


def push_sensor_interval_seconds() -> int:
    """How often the push sensor looks for a finished build (seconds): a build waits up to this long for its push."""
    return int(os.environ.get("LIFECYCLE_PUSH_SENSOR_INTERVAL_SECONDS", "30"))


def outbox_dir() -> Path:
    """Where a dry-run push writes the requests it would have sent."""
    return Path(os.environ.get("LIFECYCLE_OUTBOX_DIR", PROJECT_ROOT / "data" / "outbox"))


def recommendations_dir() -> Path:
    """Where each build writes the site's recommendation files (docs/recommendations.md)."""
    return Path(os.environ.get("LIFECYCLE_RECOMMENDATIONS_DIR", PROJECT_ROOT / "data" / "recommendations"))


def logs_dir() -> Path:
    """Where `make demo` keeps Dagster's full log of its runs (one file per demo)."""
    return Path(os.environ.get("LIFECYCLE_LOG_DIR", PROJECT_ROOT / "data" / "logs"))


def first_landing_day() -> str:
    """The first daily partition. Landing folders before it are not offered for ingest."""
    return os.environ.get("LIFECYCLE_FIRST_LANDING_DAY", DEFAULT_FIRST_LANDING_DAY)


def shop_currency() -> str:
    """The currency letters name beside a bonus amount (the models compute amounts in it)."""
    return os.environ.get("LIFECYCLE_SHOP_CURRENCY", "EUR")


# The shop as its letters present it (issue 14). Compiled into every letter template, so a change
# gives each template a new SendGrid version. The defaults are the sample shop's; a real shop sets
# its own: the postal address in a marketing letter's footer is required by law in many countries.
def shop_name() -> str:
    return os.environ.get("LIFECYCLE_SHOP_NAME", "Sample Shop")


def shop_postal_address() -> str:
    return os.environ.get("LIFECYCLE_SHOP_POSTAL_ADDRESS", "Example Street 1, 10115 Berlin, Germany")


def shop_postal_address_is_set() -> bool:
    """False while letters carry the sample shop's example address."""
    return bool(os.environ.get("LIFECYCLE_SHOP_POSTAL_ADDRESS", "").strip())


def shop_url() -> str:
    """Where a letter's button leads (the shop's home page); the letter adds its UTM tags."""
    return os.environ.get("LIFECYCLE_SHOP_URL", "https://shop.example.com/")


def previews_dir() -> Path:
    """Where the letter previews (HTML, and screenshots from `make previews`) are written."""
    return Path(os.environ.get("LIFECYCLE_PREVIEWS_DIR", PROJECT_ROOT / "data" / "previews"))


def chromium_path() -> Path:
    """The headless browser that takes the letter screenshots (Debian's chromium, scripts/install-browser)."""
    return Path(os.environ.get("LIFECYCLE_CHROMIUM", "/usr/bin/chromium"))
