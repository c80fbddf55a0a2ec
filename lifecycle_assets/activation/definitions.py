import dagster as dg


def activation_definitions() -> dg.Definitions:
    """Placeholder until the SendGrid push lands (issue 4)."""
    return dg.Definitions()
