import dagster as dg


def automation_definitions() -> dg.Definitions:
    """Placeholder until schedules land (issue 5)."""
    return dg.Definitions()
