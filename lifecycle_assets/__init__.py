"""lifecycle_assets: lifecycle marketing for an online shop, as Dagster assets over DuckDB."""
