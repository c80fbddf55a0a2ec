"""From landing files to SendGrid's state: sample shop -> ingest -> lifecycle model -> push to the fake."""

from __future__ import annotations

import json

import dagster as dg
import duckdb
import pytest

from lifecycle_assets_tests.fake_sendgrid import FakeSendGrid

from .conftest import API_KEY, ledger_rows

PIPELINE_GROUPS = ("ingest", "quality", "lifecycle")


@pytest.fixture
def project(tmp_path, monkeypatch):
    """The whole code location pointed at temporary storage and at the fake SendGrid."""
    from lifecycle_assets.sample_data.sample_shop import generate_sample_shop

    landing = tmp_path / "landing"
    shop = generate_sample_shop(landing, customers=300, days=60, end_day="2024-03-31", seed=11)
    with FakeSendGrid(api_key=API_KEY) as fake:
        monkeypatch.setenv("LIFECYCLE_LANDING_DIR", str(landing))
        monkeypatch.setenv("LIFECYCLE_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
        monkeypatch.setenv("LIFECYCLE_OUTBOX_DIR", str(tmp_path / "outbox"))
        monkeypatch.setenv("SENDGRID_API_KEY", API_KEY)
        monkeypatch.setenv("SENDGRID_HOST", fake.base_url)
        monkeypatch.setenv("SENDGRID_UNSUBSCRIBE_GROUP_ID", "77")
        from lifecycle_assets.definitions import build_definitions

        defs = build_definitions(first_landing_day=shop["first_day"])
        yield defs, shop, fake, tmp_path / "warehouse.duckdb"


def test_landing_data_ends_up_in_sendgrid_and_a_rerun_sends_nothing_new(project):
    defs, shop, fake, warehouse = project
    with dg.DagsterInstance.ephemeral() as instance:
        pipeline = dg.materialize(
            [*defs.assets, *(defs.asset_checks or [])],
            selection=dg.AssetSelection.groups(*PIPELINE_GROUPS),
            instance=instance,
            resources=defs.resources,
            tags={
                "dagster/asset_partition_range_start": shop["first_day"],
                "dagster/asset_partition_range_end": shop["last_day"],
            },
        )
        assert pipeline.success
        job = defs.resolve_job_def("push_to_sendgrid")
        assert job.execute_in_process(instance=instance).success

        with duckdb.connect(str(warehouse), read_only=True) as connection:
            letters = connection.execute(
                "select letter_key, lower(email), template_name, personalisation from marts.letters_planned"
            ).fetchall()
            audiences = connection.execute("select list_name, lower(email) from marts.audiences").fetchall()
        assert letters and audiences, "the sample shop plans letters and audiences"

        sent = {message["custom_args"]["letter_key"]: message for message in fake.sent_messages()}
        assert len(sent) == len(fake.sent_messages())
        ledger = ledger_rows(warehouse)
        templates = fake.templates()
        for letter_key, email, template_name, personalisation in letters:
            state = ledger[letter_key][0]
            # deferred / expired: the contact policy's caps and validity; held_out: control groups (docs/activation.md)
            assert state in ("accepted", "suppressed", "deferred", "expired", "held_out"), (letter_key, ledger[letter_key])
            assert (letter_key in sent) == (state == "accepted")  # a held-out (or deferred) letter is never sent
            if state == "accepted":
                message = sent[letter_key]
                assert message["to"] == email
                assert message["template_id"] == templates[f"lifecycle:{template_name}"]["id"]
                expected = json.loads(personalisation)
                assert {k: message["dynamic_template_data"][k] for k in expected} == expected
                assert message["asm"] == {"group_id": 77}
        assert set(sent) == {key for key, row in ledger.items() if row[0] == "accepted"}

        members: dict[str, set[str]] = {}
        for list_name, email in audiences:
            members.setdefault(list_name, set()).add(email)
        assert set(fake.lists()) == set(members)
        for list_name, emails in members.items():
            assert fake.list_members(list_name) == emails

        before = len(fake.requests)
        assert job.execute_in_process(instance=instance).success
        assert [r for r in fake.requests[before:] if r.method != "GET"] == []
