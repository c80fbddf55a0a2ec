"""A landing day as a whole, against its recent past: what row rules cannot see.

Every row of a day can pass the contract while the day is wrong: an export with prices in cents,
a tracking change that drops every ``add_to_cart``, a form that stops asking for consent. The day
profile catches those. Its measures come from the contract, per daily entity:

- amounts (``amount`` columns): mean, median and 90th percentile;
- columns with a fixed set of values (order status, event type): the share of each value;
- booleans (marketing consent): the share that is true;
- optional columns: the share of rows without a value.

DuckDB computes each day's measures and, for each, the median over the previous
``lookback_days`` days (``per_day_vs_recent_sql``). Great Expectations then judges those few rows
(one per landing day, whatever the day's row count) in ``checks.py``: a measure must stay within
``max_ratio`` of its recent median. Shares are compared with ``SHARE_SMOOTHING`` added on both
sides, so a share of 0.1% moving to 0.3% is noise, while a share of 10% dropping to 0 is not.
"""

from __future__ import annotations

from dataclasses import dataclass

from lifecycle_assets.ingest.contract import Entity

SHARE_SMOOTHING = 0.02


@dataclass(frozen=True)
class Measure:
    """One number per landing day; ``share`` measures are compared with smoothing."""

    name: str
    sql: str
    share: bool


def measures(entity: Entity) -> list[Measure]:
    """The day-profile measures of an entity, derived from its contract columns."""
    found = []
    for column in entity.columns:
        quoted = f'"{column.name}"'
        if column.type == "amount":
            amount = f"{quoted}::DOUBLE"
            found += [
                Measure(f"{column.name}_mean", f"avg({amount})", share=False),
                Measure(f"{column.name}_median", f"quantile_cont({amount}, 0.5)", share=False),
                Measure(f"{column.name}_p90", f"quantile_cont({amount}, 0.9)", share=False),
            ]
        if column.allowed:
            found += [
                Measure(f"{column.name}_{value}_share", f"avg(({quoted} = '{value}')::INTEGER)", share=True)
                for value in column.allowed
            ]
        if column.type == "boolean":
            found.append(Measure(f"{column.name}_true_share", f"avg({quoted}::INTEGER)", share=True))
        if not column.required:
            found.append(Measure(f"{column.name}_null_share", f"avg(({quoted} IS NULL)::INTEGER)", share=True))
    if entity.partial_rows_without:
        # Judge the day's whole records (registrations), not its partial change rows: a day with many
        # consent withdrawals is not a broken export.
        whole = f'FILTER (WHERE "{entity.partial_rows_without}" IS NOT NULL)'
        found = [Measure(m.name, f"{m.sql} {whole}", m.share) for m in found]
    return found


def per_day_vs_recent_sql(entity: Entity, lookback_days: int) -> str:
    """One row per landing day of ``$first``..``$last`` with enough rows and enough history.

    Columns: ``day``, ``rows``, ``recent_days`` and per measure its value, its recent median
    (``<measure>_recent``) and their ratio (``<measure>_vs_recent``). Parameters: ``$first``,
    ``$last``, ``$min_rows``, ``$today``: today's landing day is still open (the hourly run), so it
    is judged only once it has closed. Reads only the run's days and the lookback before them.
    """
    found = measures(entity)
    smoothing = {m.name: SHARE_SMOOTHING if m.share else 0.0 for m in found}
    aggregates = ",\n".join(f'{m.sql} AS "{m.name}"' for m in found)
    recent = ",\n".join(f'median("{m.name}") OVER recent AS "{m.name}_recent"' for m in found)
    ratios = ",\n".join(
        f'"{m.name}", "{m.name}_recent", '
        f'("{m.name}" + {smoothing[m.name]}) / nullif("{m.name}_recent" + {smoothing[m.name]}, 0) AS "{m.name}_vs_recent"'
        for m in found
    )
    return f"""
        WITH per_day AS (
            SELECT _landing_date AS day, count(*) AS rows,
            {aggregates}
            FROM raw.{entity.name}
            WHERE _landing_date BETWEEN $first::DATE - INTERVAL ({lookback_days}) DAY AND $last::DATE
            GROUP BY _landing_date
            HAVING count(*) >= $min_rows
        ),
        with_recent AS (
            SELECT day, rows,
            count(*) OVER recent AS recent_days,
            {recent}
            FROM per_day
            WINDOW recent AS (ORDER BY day RANGE BETWEEN INTERVAL ({lookback_days}) DAY PRECEDING AND INTERVAL 1 DAY PRECEDING)
        )
        SELECT day, rows, recent_days,
        {ratios}
        FROM with_recent JOIN per_day USING (day, rows)
        WHERE day BETWEEN $first::DATE AND $last::DATE AND day < $today::DATE AND recent_days >= {max(1, lookback_days // 2)}
        ORDER BY day
    """
