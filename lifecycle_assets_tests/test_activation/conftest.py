from __future__ import annotations

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from lifecycle_assets.activation.assets import activation_assets, activation_checks
from lifecycle_assets.activation.resources import SendGridResource
from lifecycle_assets_tests.fake_sendgrid import FakeSendGrid

from .sample_marts import write_sample_marts

API_KEY = "SG.test-key"
UNSUBSCRIBE_GROUP = 4242


@pytest.fixture(autouse=True)
def previews_in_tmp(tmp_path, monkeypatch):
    """Letter previews written by a templates sync go to the test's folder, not the repo's data/."""
    monkeypatch.setenv("LIFECYCLE_PREVIEWS_DIR", str(tmp_path / "previews"))


@pytest.fixture
def fake():
    with FakeSendGrid(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def warehouse(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    write_sample_marts(path, customers=40)
    return path


def sendgrid_for(fake: FakeSendGrid, **overrides) -> SendGridResource:
    settings = dict(
        api_key=API_KEY,
        host=fake.base_url,
        sender_email="shop@example.com",
        sender_name="The Shop",
        unsubscribe_group_id=UNSUBSCRIBE_GROUP,
        timeout_seconds=5,
        max_retries=4,
        backoff_seconds=0.01,
        max_backoff_seconds=0.5,
        import_poll_timeout_seconds=10,
    )
    settings.update(overrides)
    return SendGridResource(**settings)


def push(warehouse, sendgrid: SendGridResource, *, raise_on_error: bool = True, run_config=None):
    """One push_to_sendgrid run in process, the way the job runs it (templates, audiences, letters, check)."""
    return dg.materialize(
        [*activation_assets, *activation_checks],
        resources={"sendgrid": sendgrid, "duckdb": DuckDBResource(database=str(warehouse))},
        raise_on_error=raise_on_error,
        run_config=run_config,
    )


def ledger_rows(warehouse) -> dict[str, tuple]:
    """letter_key -> (state, message_id, error, suppression_reason)."""
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return {
            row[0]: row[1:]
            for row in connection.execute(
                "select letter_key, state, message_id, error, suppression_reason from activation.send_ledger"
            ).fetchall()
        }


def planned_letters(warehouse) -> dict[str, tuple]:
    """letter_key -> (email, template_name, personalisation JSON)."""
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return {
            row[0]: row[1:]
            for row in connection.execute(
                "select letter_key, email, template_name, personalisation from marts.letters_planned"
            ).fetchall()
        }


def materialization_metadata(result, asset_path: list[str]) -> dict:
    event = result.asset_materializations_for_node("activation__" + asset_path[-1])[0]
    return {key: value.value for key, value in event.metadata.items()}
