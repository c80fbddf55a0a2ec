"""What the ingest rejected, summarised for operators: counts by entity and reason, and the files."""


import dagster as dg
from dagster_duckdb import DuckDBResource

from lifecycle_assets.ingest.contract import ENTITIES
from lifecycle_assets.metadata import frame_table

OWNERS = ["team:data"]


@dg.asset(
    key=["quality", "quarantine_summary"],
    deps=[dg.AssetKey(["raw", name]) for name in ENTITIES],
    group_name="quality",
    kinds={"duckdb"},
    owners=OWNERS,
)
def quarantine_summary(duckdb: DuckDBResource) -> dg.MaterializeResult:
    """Rejected rows and files by entity and reason, over all landing days: where to look when a
    quality check fails or a shop export degrades."""
    with duckdb.get_connection() as con:
        con.execute(
            """
            CREATE OR REPLACE TABLE quality.quarantine_summary AS
            SELECT entity, reason, count(*) AS rows, min(landing_date) AS first_day, max(landing_date) AS last_day
            FROM quality.quarantined_rows GROUP BY ALL ORDER BY entity, rows DESC
            """
        )
        summary = con.execute("SELECT * FROM quality.quarantine_summary").pl()
        files = con.execute(
            "SELECT entity, landing_date, source_file, reason FROM quality.quarantined_files ORDER BY landing_date DESC LIMIT 20"
        ).pl()
        file_count = con.execute("SELECT count(*) FROM quality.quarantined_files").fetchone()[0]
    per_entity = {name: int(summary.filter(summary["entity"] == name)["rows"].sum()) for name in ENTITIES}
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": summary.height,
            "quarantined_rows": int(summary["rows"].sum()),
            "quarantined_files": int(file_count),
            **{f"quarantined_rows_{name}": count for name, count in per_entity.items()},
            "by_reason": dg.MetadataValue.md(frame_table(summary)),
            "latest_rejected_files": dg.MetadataValue.md(frame_table(files)),
        }
    )
