"""Operator commands for the SendGrid push, outside the UI.

    python -m lifecycle_assets.activation push              # run push_to_sendgrid once, in this process
    python -m lifecycle_assets.activation unknown           # letter keys whose outcome is unknown
    python -m lifecycle_assets.activation release KEY ...   # make unknown letters sendable again

The warehouse is LIFECYCLE_DUCKDB_PATH; SendGrid settings come from SENDGRID_* variables.
"""

from __future__ import annotations

import argparse
import sys

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from lifecycle_assets import environment
from lifecycle_assets.activation import ledger
from lifecycle_assets.activation.assets import activation_assets, activation_checks
from lifecycle_assets.activation.resources import sendgrid_resource_from_environment


def push() -> int:
    result = dg.materialize(
        [*activation_assets, *activation_checks],
        resources={
            "sendgrid": sendgrid_resource_from_environment(),
            "duckdb": DuckDBResource(database=str(environment.warehouse_path())),
        },
        raise_on_error=False,
    )
    return 0 if result.success else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lifecycle_assets.activation", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("push", help="run the SendGrid push once")
    commands.add_parser("unknown", help="list letters whose outcome is unknown")
    release = commands.add_parser("release", help="make unknown letters sendable again (check Email Activity first)")
    release.add_argument("letter_keys", nargs="+")
    arguments = parser.parse_args(argv)
    if arguments.command == "push":
        return push()
    with duckdb.connect(str(environment.warehouse_path())) as connection:
        ledger.ensure_schema(connection)
        if arguments.command == "unknown":
            for letter_key, error in ledger.letters_in_state(connection, "unknown"):
                print(f"{letter_key}\t{error or ''}")
            return 0
        released = ledger.release_letters(connection, arguments.letter_keys)
        print(f"released {released} of {len(arguments.letter_keys)} letter(s); the next push sends them")
        return 0


if __name__ == "__main__":
    sys.exit(main())
