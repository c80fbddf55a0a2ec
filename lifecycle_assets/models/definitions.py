import dagster as dg


def models_definitions() -> dg.Definitions:
    """Placeholder until the SQL model factory lands (issue 3)."""
    return dg.Definitions()
