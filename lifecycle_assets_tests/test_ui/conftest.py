"""A real Dagster UI for the browser test: `dagster dev` as the README starts it, over a small sample shop.

The UI runs from the documented command (`make ui` runs `dagster dev -w workspace.yaml`) with the
documented instance settings (`make dagster-home`), on a free port, with its own DAGSTER_HOME,
landing zone, DuckDB file and outbox, and without SENDGRID_API_KEY so the push runs dry.
Playwright drives Debian's chromium (scripts/install-browser), never a browser it downloads itself.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "ui"
CHROMIUM = Path(os.environ.get("LIFECYCLE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
UI_START_TIMEOUT_SECONDS = 120
SHUTDOWN_GRACE_SECONDS = 20


@dataclass
class DagsterUI:
    url: str
    landing_day: str
    outbox: Path
    warehouse: Path
    log: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _write_instance_settings(dagster_home: Path) -> None:
    """The instance settings of the documented dev setup, written by the same Makefile target."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    if shutil.which("make"):
        subprocess.run(["make", "-s", "dagster-home", f"DAGSTER_HOME={dagster_home}"], cwd=REPO, check=True, timeout=60)
    else:
        (dagster_home / "dagster.yaml").write_text("nux:\n  enabled: false\ntelemetry:\n  enabled: false\n")
    settings = (dagster_home / "dagster.yaml").read_text()
    assert "nux" in settings and "telemetry" in settings, settings


def _wait_until_serving(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + UI_START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dagster dev exited with {process.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"dagster dev did not serve {url} within {UI_START_TIMEOUT_SECONDS} s; see {log}")


def _stop(process: subprocess.Popen) -> None:
    """Stop `dagster dev` and everything it started (webserver, daemon, code servers, run workers)."""
    if process.poll() is not None:
        return
    group = process.pid  # start_new_session=True: the group id is the pid
    try:
        os.killpg(group, signal.SIGTERM)
        process.wait(timeout=SHUTDOWN_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        return
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: run scripts/install-browser as root (make test does) to install Debian chromium")
    return str(CHROMIUM)


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    return SCREENSHOTS


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory, chromium_path) -> DagsterUI:
    from lifecycle_assets.sample_data.sample_shop import generate_sample_shop

    root = tmp_path_factory.mktemp("dagster_ui")
    # One landing day holds a whole small shop: registrations, orders and their customers land
    # together, so the day's blocking checks pass without an earlier history to refer to.
    landing_day = (datetime.now(timezone.utc) - timedelta(days=1)).date().isoformat()
    generate_sample_shop(root / "landing", customers=200, days=1, end_day=landing_day, seed=11)
    dagster_home = root / "dagster_home"
    _write_instance_settings(dagster_home)

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("SENDGRID_")}
    environment.update(
        DAGSTER_HOME=str(dagster_home),
        LIFECYCLE_LANDING_DIR=str(root / "landing"),
        LIFECYCLE_DUCKDB_PATH=str(root / "warehouse" / "lifecycle.duckdb"),
        LIFECYCLE_OUTBOX_DIR=str(root / "outbox"),
        LIFECYCLE_FIRST_LANDING_DAY=landing_day,
        PYTHONUNBUFFERED="1",
        LIFECYCLE_PUSH_SENSOR_INTERVAL_SECONDS="5",  # the push follows the build within seconds, not half a minute
    )
    log = SCREENSHOTS / "dagster-dev.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    dagster = REPO / ".venv" / "bin" / "dagster"
    if not dagster.exists():
        dagster = Path(shutil.which("dagster") or "dagster")
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_serving(process, url, log)
        yield DagsterUI(
            url=url,
            landing_day=landing_day,
            outbox=root / "outbox",
            warehouse=root / "warehouse" / "lifecycle.duckdb",
            log=log,
        )
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def page(chromium_path, dagster_ui):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(viewport={"width": 1600, "height": 1000})
            context.set_default_timeout(30_000)
            yield context.new_page()
        finally:
            browser.close()
