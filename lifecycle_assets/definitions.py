"""Assembles every domain into one code location and applies cross-cutting policy in one place.

Data flows ingest -> quality -> models -> activation; each domain contributes its own
Definitions. The in-process executor is the policy for the whole location: every step writes one
DuckDB file, which takes one writer at a time, and the multiprocess executor adds ~13 s per run.
"""

from __future__ import annotations

import dagster as dg

from lifecycle_assets import environment
from lifecycle_assets.activation.definitions import activation_definitions
from lifecycle_assets.automation import automation_definitions
from lifecycle_assets.ingest.definitions import daily_landing_partitions, ingest_definitions
from lifecycle_assets.models.definitions import models_definitions
from lifecycle_assets.quality.definitions import quality_definitions
from lifecycle_assets.resources import default_resources
from lifecycle_assets.webhook.definitions import webhook_definitions


def build_definitions(first_landing_day: str | None = None) -> dg.Definitions:
    """The whole project; `first_landing_day` moves the daily partitions (CDNOW starts in 1997)."""
    partitions = daily_landing_partitions(first_landing_day or environment.first_landing_day())
    return dg.Definitions.merge(
        ingest_definitions(partitions),
        quality_definitions(),
        models_definitions(),
        activation_definitions(),
        automation_definitions(partitions),
        webhook_definitions(partitions),
        dg.Definitions(resources=default_resources(), executor=dg.in_process_executor),
    )


defs = build_definitions()
