"""The push starts once per build of the planned letters, keyed by the producing run."""

from __future__ import annotations

import threading
import time

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from lifecycle_assets.activation.sensors import push_after_letters_build
from lifecycle_assets.models.checks import AUDITS, build_audit_check
from lifecycle_assets.models.definitions import models_definitions
from lifecycle_assets.models.settings import LifecycleSettings
from lifecycle_assets.models.sql_models import build_all
from lifecycle_assets_tests.test_models import tiny_shop


@dg.asset(key=["marts", "letters_planned"])
def letters_planned_build() -> None:
    """Stands in for the model's build: the sensor only reads its materialisation events."""


@dg.asset(key=["marts", "audiences"])
def audiences_build() -> None:
    """Stands in for the model's build."""


def evaluate(instance, cursor):
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    result = push_after_letters_build(context)
    if isinstance(result, dg.SkipReason):
        return [], cursor
    return result.run_requests, result.cursor


def test_two_builds_give_two_runs_and_reevaluation_gives_none():
    with dg.DagsterInstance.ephemeral() as instance:
        builds = [
            dg.materialize([letters_planned_build, audiences_build], instance=instance).run_id for _ in range(2)
        ]

        requests, cursor = evaluate(instance, None)
        assert [request.run_key for request in requests] == builds
        assert all(request.job_name in (None, "push_to_sendgrid") for request in requests)

        again, same_cursor = evaluate(instance, cursor)
        assert again == [] and same_cursor == cursor

        third = dg.materialize([letters_planned_build], instance=instance).run_id
        requests, _ = evaluate(instance, cursor)
        assert [request.run_key for request in requests] == [third]


def test_a_build_of_other_assets_starts_no_push():
    with dg.DagsterInstance.ephemeral() as instance:
        dg.materialize([audiences_build], instance=instance)
        requests, cursor = evaluate(instance, None)
        assert requests == [] and cursor is None


def test_a_build_is_pushed_once_its_run_has_finished_not_while_its_audits_may_still_run():
    gate = threading.Event()

    @dg.asset(deps=[letters_planned_build])
    def lifecycle_report() -> None:
        """A later step of the same run, held until the test has looked."""
        assert gate.wait(timeout=60)

    with dg.instance_for_test() as instance:
        outcome = {}
        build = threading.Thread(
            target=lambda: outcome.update(
                result=dg.materialize([letters_planned_build, lifecycle_report], instance=instance)
            )
        )
        build.start()
        try:
            deadline = time.monotonic() + 30
            while instance.get_latest_materialization_event(letters_planned_build.key) is None:
                assert time.monotonic() < deadline, "the build never materialised marts.letters_planned"
                time.sleep(0.1)
            result = push_after_letters_build(dg.build_sensor_context(instance=instance))
            assert not result.run_requests and "waiting" in result.skip_reason.skip_message
        finally:
            gate.set()
            build.join()
        result = push_after_letters_build(dg.build_sensor_context(instance=instance, cursor=result.cursor))
        assert [request.run_key for request in result.run_requests] == [outcome["result"].run_id]


# --- Blocking means blocking: the real audits on a tiny shop's lifecycle in a DuckDB file ---

PUSH_READS = (("marts", "letters_planned"), ("marts", "audiences"))
AUDIT_INPUTS = [
    dg.AssetSpec(["marts", "customer_lifecycle"]),
    dg.AssetSpec(["staging", "stg_customers"]),
    dg.AssetSpec(["staging", "stg_interactions"]),
]


def shop_warehouse(tmp_path):
    """Ann consents, Bob does not; the whole lifecycle built by the real SQL models as of day 0."""
    shop = tiny_shop.TinyShop().customer("ann", tiny_shop.at(0)).customer("bob", tiny_shop.at(0), consent=False)
    warehouse = shop.write(tmp_path / "shop.duckdb")
    with duckdb.connect(str(warehouse)) as connection:
        build_all(connection, LifecycleSettings(as_of=tiny_shop.day(0).isoformat()))
    return warehouse


@dg.asset(key=["marts", "letters_planned"], deps=[dg.AssetKey(["marts", "customer_lifecycle"])])
def letters_planned_as_built(duckdb: DuckDBResource) -> None:
    """The tables are already built by the real SQL; this run stands for the model's build."""


@dg.asset(key=["marts", "letters_planned"], deps=[dg.AssetKey(["marts", "customer_lifecycle"])])
def letters_planned_with_a_consent_bug(duckdb: DuckDBResource) -> None:
    """A model change gone wrong: Ann's welcome letter also planned for Bob, who gave no consent."""
    with duckdb.get_connection() as connection:
        connection.execute(
            "insert into marts.letters_planned select * replace ('bob' as customer_id, 'welcome_day0:bob' as letter_key) "
            "from marts.letters_planned where customer_id = 'ann'"
        )


@dg.asset(key=["marts", "audiences"], deps=[dg.AssetKey(["marts", "customer_lifecycle"])])
def audiences_as_built() -> None:
    """Stands for the model's build of the contact lists."""


def build_push_inputs(warehouse, instance, letters_planned) -> dg.ExecuteInProcessResult:
    """One run that builds the push's inputs with the real blocking audits on them."""
    audits = [build_audit_check(audit) for audit in AUDITS if audit.asset in PUSH_READS]
    return dg.materialize(
        [letters_planned, audiences_as_built, *audits, *AUDIT_INPUTS],
        resources={"duckdb": DuckDBResource(database=str(warehouse))},
        selection=[dg.AssetKey(list(key)) for key in PUSH_READS],
        instance=instance,
        raise_on_error=False,
    )


def test_a_build_that_fails_a_blocking_audit_is_not_pushed_and_the_tick_says_why(tmp_path):
    warehouse = shop_warehouse(tmp_path)
    # The code location the daemon hands the sensor: it knows which audits are blocking.
    definitions = dg.Definitions.merge(
        models_definitions(), dg.Definitions(resources={"duckdb": DuckDBResource(database=str(warehouse))})
    )
    with dg.instance_for_test() as instance:
        good = build_push_inputs(warehouse, instance, letters_planned_as_built)
        assert good.success
        result = push_after_letters_build(dg.build_sensor_context(instance=instance, definitions=definitions))
        assert [request.run_key for request in result.run_requests] == [good.run_id]

        bad = build_push_inputs(warehouse, instance, letters_planned_with_a_consent_bug)
        assert not bad.success
        assert instance.get_latest_materialization_event(dg.AssetKey(["marts", "letters_planned"])).run_id == bad.run_id

        result = push_after_letters_build(
            dg.build_sensor_context(instance=instance, cursor=result.cursor, definitions=definitions)
        )
        assert not result.run_requests
        assert "marts/letters_planned:no_letter_without_consent failed" in result.skip_reason.skip_message
        assert bad.run_id in result.skip_reason.skip_message

        again = push_after_letters_build(
            dg.build_sensor_context(instance=instance, cursor=result.cursor, definitions=definitions)
        )
        assert isinstance(again, dg.SkipReason), "a build not pushed stays not pushed"


@dg.asset(key=["marts", "audiences"], deps=[dg.AssetKey(["marts", "customer_lifecycle"])])
def audiences_with_a_consent_bug(duckdb: DuckDBResource) -> None:
    """A model change gone wrong: Bob, who gave no consent, put on Ann's contact lists."""
    with duckdb.get_connection() as connection:
        connection.execute(
            "insert into marts.audiences select * replace ('bob' as customer_id) from marts.audiences where customer_id = 'ann'"
        )


def test_an_hourly_build_is_not_pushed_while_the_latest_audiences_failed_their_audit(tmp_path):
    """The hourly run rebuilds only the letters; the push also syncs the daily run's contact lists."""
    warehouse = shop_warehouse(tmp_path)
    definitions = dg.Definitions.merge(
        models_definitions(), dg.Definitions(resources={"duckdb": DuckDBResource(database=str(warehouse))})
    )
    resources = {"duckdb": DuckDBResource(database=str(warehouse))}
    audits = [build_audit_check(audit) for audit in AUDITS if audit.asset in PUSH_READS]
    with dg.instance_for_test() as instance:
        daily = dg.materialize(
            [audiences_with_a_consent_bug, *audits, *AUDIT_INPUTS, dg.AssetSpec(["marts", "letters_planned"])],
            resources=resources, selection=[dg.AssetKey(["marts", "audiences"])], instance=instance, raise_on_error=False,
        )
        assert not daily.success
        hourly = dg.materialize(
            [letters_planned_as_built, *audits, *AUDIT_INPUTS, dg.AssetSpec(["marts", "audiences"])],
            resources=resources, selection=[dg.AssetKey(["marts", "letters_planned"])], instance=instance,
        )
        assert hourly.success

        result = push_after_letters_build(dg.build_sensor_context(instance=instance, definitions=definitions))
        assert not result.run_requests
        assert f"marts/audiences:no_audience_member_without_consent failed in run {daily.run_id}" in (
            result.skip_reason.skip_message
        )


def test_a_build_whose_audits_were_left_out_is_not_pushed(tmp_path):
    """Materialising the letters alone (audits unticked in the UI) leaves the build unaudited."""
    warehouse = shop_warehouse(tmp_path)
    definitions = dg.Definitions.merge(
        models_definitions(), dg.Definitions(resources={"duckdb": DuckDBResource(database=str(warehouse))})
    )
    with dg.instance_for_test() as instance:
        unaudited = dg.materialize([letters_planned_with_a_consent_bug, *AUDIT_INPUTS], resources={
            "duckdb": DuckDBResource(database=str(warehouse))}, selection=[dg.AssetKey(["marts", "letters_planned"])],
            instance=instance)
        result = push_after_letters_build(dg.build_sensor_context(instance=instance, definitions=definitions))
        assert not result.run_requests
        message = result.skip_reason.skip_message
        assert unaudited.run_id in message
        assert "marts/letters_planned:no_letter_without_consent never ran" in message
