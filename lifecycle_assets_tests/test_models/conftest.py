from __future__ import annotations

import json

import duckdb
import pytest

from lifecycle_assets.models.settings import LifecycleSettings
from lifecycle_assets.models.sql_models import build_all
from lifecycle_assets_tests.test_models.tiny_shop import TinyShop, day


class BuiltShop:
    """A tiny shop built as of one day, with the questions the tests ask of it."""

    def __init__(self, connection: duckdb.DuckDBPyConnection):
        self.connection = connection

    def stage(self, customer_id: str) -> str | None:
        row = self.connection.execute(
            "select stage from marts.customer_lifecycle where customer_id = ?", [customer_id]
        ).fetchone()
        return row[0] if row else None

    def lifecycle(self, customer_id: str) -> dict:
        cursor = self.connection.execute("select * from marts.customer_lifecycle where customer_id = ?", [customer_id])
        columns = [c[0] for c in cursor.description]
        return dict(zip(columns, cursor.fetchone()))

    def letters(self, customer_id: str | None = None) -> dict[str, dict]:
        """letter_key -> the letter, with its personalisation parsed."""
        cursor = self.connection.execute(
            "select * from marts.letters_planned where ? is null or customer_id = ?", [customer_id, customer_id]
        )
        columns = [c[0] for c in cursor.description]
        letters = {}
        for row in cursor.fetchall():
            letter = dict(zip(columns, row))
            letter["personalisation"] = json.loads(letter["personalisation"])
            letters[letter["letter_key"]] = letter
        return letters

    def triggers(self, customer_id: str) -> set[str]:
        return {letter["trigger"] for letter in self.letters(customer_id).values()}

    def lists(self, customer_id: str) -> set[str]:
        return {
            row[0]
            for row in self.connection.execute(
                "select list_name from marts.audiences where customer_id = ?", [customer_id]
            ).fetchall()
        }


@pytest.fixture
def build(tmp_path):
    """build(shop, as_of_day_number, **rules) -> BuiltShop: the whole model built in a fresh DuckDB file."""
    connections = []
    database = tmp_path / "shop.duckdb"

    def _build(shop: TinyShop, as_of: int, **rules) -> BuiltShop:
        if not database.exists():
            shop.write(database)
        connection = duckdb.connect(str(database))
        connections.append(connection)
        build_all(connection, LifecycleSettings(as_of=day(as_of).isoformat(), **rules))
        return BuiltShop(connection)

    yield _build
    for connection in connections:
        connection.close()
