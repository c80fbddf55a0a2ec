"""What an operator does in the Dagster UI, in a real browser: see the domains, build a day, see the push.

Screenshots of every step land in test-artifacts/ui/ (CI keeps them as artefacts).
"""

from __future__ import annotations

import re
import time

import pytest

pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

LOCATION = "__repository__@lifecycle_assets.definitions"
GROUPS = ("ingest", "quality", "lifecycle", "activation")
RUN_TIMEOUT_SECONDS = 150
PUSH_TIMEOUT_SECONDS = 120
# The checks of the daily build an operator looks at first: the blocking ingest checks of one
# entity and the blocking letter audits before anything reaches SendGrid.
CHECKED_ASSETS = {
    "raw/orders": ("great_expectations_suite", "quarantine_rate", "volume_anomaly"),
    "marts/letters_planned": ("letter_keys_unique", "no_letter_without_consent"),
}


def shoot(page, screenshots, name: str) -> None:
    page.screenshot(path=str(screenshots / f"{name}.png"), full_page=False)


def test_asset_graph_shows_every_domain_group(page, dagster_ui, screenshots):
    page.goto(f"{dagster_ui.url}/asset-groups")
    graph = page.locator("svg")
    for group in GROUPS:
        page.get_by_text(group, exact=True).first.wait_for(timeout=90_000)
    page.wait_for_timeout(500)
    shoot(page, screenshots, "01-asset-graph")
    for group in GROUPS:
        assert graph.get_by_text(group, exact=True).count() >= 1, f"group {group} is not in the asset graph"


def test_schedules_and_the_push_sensor_are_listed(page, dagster_ui, screenshots):
    page.goto(f"{dagster_ui.url}/automation")
    for name in ("daily_lifecycle_schedule", "hourly_triggers_schedule", "push_after_letters_build"):
        page.get_by_text(name, exact=True).wait_for()
    shoot(page, screenshots, "02-automation")


def test_operator_builds_a_day_from_the_launchpad_and_the_push_follows(page, dagster_ui, screenshots):
    started = time.monotonic()
    try:
        run_id = launch_daily_lifecycle(page, dagster_ui, screenshots)
        wait_for_run_success(page, run_id, screenshots)
        for asset, checks in CHECKED_ASSETS.items():
            see_checks_passed(page, dagster_ui, screenshots, asset, checks)
        see_push_in_runs_list(page, dagster_ui, screenshots, run_id)
    except Exception:
        shoot(page, screenshots, "99-failure")
        raise
    # A dry-run push writes the requests it would have sent, and sends nothing.
    outbox_files = list(dagster_ui.outbox.glob("*.jsonl"))
    assert outbox_files, f"the dry-run push wrote nothing to {dagster_ui.outbox}"
    print(f"UI scenario took {time.monotonic() - started:.0f} s")


def launch_daily_lifecycle(page, dagster_ui, screenshots) -> str:
    page.goto(f"{dagster_ui.url}/locations/{LOCATION}/jobs/daily_lifecycle/playground")
    partition = page.get_by_placeholder("Partition")
    partition.wait_for(timeout=60_000)
    partition.click()
    partition.fill(dagster_ui.landing_day)
    page.get_by_text(dagster_ui.landing_day, exact=True).last.click()
    page.get_by_text(f"partition: {dagster_ui.landing_day}").wait_for()
    shoot(page, screenshots, "03-launchpad")
    page.get_by_role("button", name="Launch Run").click()
    page.wait_for_url(re.compile(r".*/runs/[0-9a-f-]{36}.*"), timeout=60_000)
    return re.search(r"/runs/([0-9a-f-]{36})", page.url).group(1)


def wait_for_run_success(page, run_id: str, screenshots) -> None:
    """The run page shows RUN_SUCCESS in its event log; RUN_FAILURE fails the test at once."""
    finished = page.get_by_text("RUN_SUCCESS").or_(page.get_by_text("RUN_FAILURE"))
    finished.first.wait_for(timeout=RUN_TIMEOUT_SECONDS * 1000)
    page.wait_for_timeout(1000)
    shoot(page, screenshots, "04-daily-run")
    assert page.get_by_text("RUN_FAILURE").count() == 0, f"run {run_id} failed"
    assert page.get_by_text("Errored (0)").count() == 1, f"run {run_id} has errored steps"


def see_checks_passed(page, dagster_ui, screenshots, asset: str, checks: tuple[str, ...]) -> None:
    """The asset's Checks tab lists every check as Succeeded, and each one opened shows Passed."""
    page.goto(f"{dagster_ui.url}/assets/{asset}?view=checks")
    page.get_by_text(re.compile(r"^Checks \(\d+\)$")).wait_for(timeout=60_000)
    for check in checks:
        page.get_by_text(check, exact=True).first.wait_for()
    lines = [line.strip() for line in page.inner_text("body").splitlines() if line.strip()]
    for check in checks:
        status = next(line for line in lines[lines.index(check):] if line != check)
        assert status == "Succeeded", f"{asset} check {check} shows {status!r}"
    for number, check in enumerate(checks):
        # A fresh load per check: the detail pane of the check opened before cannot answer for it.
        page.goto(f"{dagster_ui.url}/assets/{asset}?view=checks&checkDetail={check}")
        page.get_by_text("Latest execution").wait_for(timeout=60_000)
        page.get_by_text("Passed", exact=True).first.wait_for()
        if number == 0:
            shoot(page, screenshots, f"05-checks-{asset.replace('/', '-')}")
        assert page.get_by_text("Failed", exact=True).count() == 0, f"{asset} check {check} did not pass"


def innermost_containing(page, *texts: str):
    """The smallest element holding all the texts: a row of a list the UI renders without table rows."""
    holds_all = " and ".join(f"contains(., '{text}')" for text in texts)
    return page.locator(f"xpath=//*[{holds_all}][not(./*[{holds_all}])]")


def see_push_in_runs_list(page, dagster_ui, screenshots, producing_run_id: str) -> None:
    """The sensor starts push_to_sendgrid for the build; the runs list shows it, succeeded (dry-run)."""
    deadline = time.monotonic() + PUSH_TIMEOUT_SECONDS
    page.goto(f"{dagster_ui.url}/runs")
    while True:
        page.get_by_text("Launched by").first.wait_for()
        push_row = innermost_containing(page, "push_to_sendgrid", "push_after_letters_build", producing_run_id[:8])
        if push_row.count() and "Success" in push_row.first.inner_text():
            break
        if time.monotonic() > deadline:
            shoot(page, screenshots, "06-runs-list")
            raise AssertionError(f"no successful push_to_sendgrid run for {producing_run_id} within {PUSH_TIMEOUT_SECONDS} s")
        page.wait_for_timeout(5_000)
        page.reload()
    shoot(page, screenshots, "06-runs-list")
