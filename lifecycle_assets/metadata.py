"""What every domain shows operators in the UI: small markdown tables, never a customer's address."""

from __future__ import annotations

import polars as pl

# Columns that stay in the warehouse: customer emails never reach UI metadata or logs.
PRIVATE_COLUMNS = ("email",)


def shown_columns(columns: list[str]) -> list[str]:
    return [column for column in columns if column not in PRIVATE_COLUMNS]


def markdown_table(columns: list[str], rows: list[tuple]) -> str:
    """A markdown table; long cells are cut and `|` or line breaks in a value cannot break the table."""

    def cell(value: object) -> str:
        text = "" if value is None else str(value)
        if len(text) > 80:
            text = text[:77] + "..."
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def frame_table(frame: pl.DataFrame) -> str:
    """A polars frame as a markdown table, without private columns; `_none_` when it has no rows."""
    if frame.is_empty():
        return "_none_"
    shown = frame.select(shown_columns(frame.columns))
    return markdown_table(shown.columns, shown.rows())
