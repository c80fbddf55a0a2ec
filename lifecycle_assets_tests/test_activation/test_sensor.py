"""The push starts once per build of the planned letters, keyed by the producing run."""

from __future__ import annotations

import dagster as dg

from lifecycle_assets.activation.sensors import push_after_letters_build


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
