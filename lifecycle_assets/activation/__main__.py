"""Operator commands for the SendGrid push, outside the UI.

    python -m lifecycle_assets.activation push                      # run push_to_sendgrid once, in this process
    python -m lifecycle_assets.activation unknown                   # unknown letters, one line per Mail Send request
    python -m lifecycle_assets.activation release --request ID      # SendGrid has no trace of it: send again
    python -m lifecycle_assets.activation accept --request ID       # SendGrid has it: settle as accepted

`release` and `accept` take filters, combined with "and": letter keys, --run, --request,
--letter-type (template name or trigger), --older-than-hours; `--dry-run` only counts. At least
one filter is required. The warehouse is LIFECYCLE_DUCKDB_PATH; SendGrid settings come from
SENDGRID_* variables.
"""

from __future__ import annotations

import argparse
import os
import sys

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from lifecycle_assets import environment
from lifecycle_assets.activation import ledger
from lifecycle_assets.activation.assets import activation_assets, activation_checks
from lifecycle_assets.activation.resources import sendgrid_resource_from_environment


def push() -> int:
    """0 when the run succeeded and every check passed; 1 when the run failed; 2 when a check failed."""
    # With DAGSTER_HOME set the run is recorded in that instance (the UI shows it); else in memory only.
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else None
    result = dg.materialize(
        [*activation_assets, *activation_checks],
        resources={
            "sendgrid": sendgrid_resource_from_environment(),
            "duckdb": DuckDBResource(database=str(environment.warehouse_path())),
        },
        raise_on_error=False,
        instance=instance,
    )
    if not result.success:
        return 1
    failed_checks = [check.check_name for check in result.get_asset_check_evaluations() if not check.passed]
    if failed_checks:
        print(f"push finished, but check(s) failed: {', '.join(failed_checks)}; see `unknown`", file=sys.stderr)
        return 2
    return 0


def _add_filters(command: argparse.ArgumentParser) -> None:
    command.add_argument("letter_keys", nargs="*", help="letter keys (optional)")
    command.add_argument("--run", dest="run_id", help="only letters claimed by this run id")
    command.add_argument("--request", dest="request_id", help="only letters of this Mail Send request (see `unknown`)")
    command.add_argument("--letter-type", help="only this template name or trigger, e.g. winback or winback_90")
    command.add_argument("--older-than-hours", type=float, help="only letters claimed at least this long ago")
    command.add_argument("--dry-run", action="store_true", help="count what matches, change nothing")


def _filters(arguments: argparse.Namespace) -> dict:
    filters = {
        "letter_keys": arguments.letter_keys or None,
        "run_id": arguments.run_id,
        "request_id": arguments.request_id,
        "letter_type": arguments.letter_type,
        "older_than_hours": arguments.older_than_hours,
    }
    return {name: value for name, value in filters.items() if value is not None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lifecycle_assets.activation", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("push", help="run the SendGrid push once")
    unknown = commands.add_parser("unknown", help="unknown letters, one line per Mail Send request")
    unknown.add_argument("--letters", action="store_true", help="one line per letter instead")
    release = commands.add_parser("release", help="unknown letters SendGrid did not accept: the next push sends them")
    _add_filters(release)
    accept = commands.add_parser("accept", help="unknown letters SendGrid did accept: settle them as accepted")
    _add_filters(accept)
    arguments = parser.parse_args(argv)
    if arguments.command == "push":
        return push()
    with duckdb.connect(str(environment.warehouse_path())) as connection:
        ledger.ensure_schema(connection)
        if arguments.command == "unknown":
            if arguments.letters:
                for letter_key, error in ledger.letters_in_state(connection, "unknown"):
                    print(f"{letter_key}\t{error or ''}")
                return 0
            print("run_id\trequest_id\tletter_type\tletters\tclaimed_at\tlook_up_letter_key")
            for row in ledger.unknown_requests(connection):
                print("\t".join("" if value is None else str(value) for value in row))
            return 0
        filters = _filters(arguments)
        if not filters:
            parser.error(f"{arguments.command} needs at least one filter (letter keys, --run, --request, --letter-type, --older-than-hours)")
        if arguments.dry_run:
            matching = ledger.select_unknown(connection, **filters)
            print(f"{len(matching)} unknown letter(s) match; nothing changed (--dry-run)")
            return 0
        if arguments.command == "release":
            released = ledger.release_unknown(connection, **filters)
            print(f"released {len(released)} unknown letter(s); the next push sends them")
            return 0
        matching = ledger.select_unknown(connection, **filters)
        accepted = ledger.resolve_unknown(
            connection, matching, state="accepted", evidence="accepted by an operator on SendGrid's evidence", whole_request=False
        )
        print(f"settled {len(accepted)} unknown letter(s) as accepted")
        return 0


if __name__ == "__main__":
    sys.exit(main())
