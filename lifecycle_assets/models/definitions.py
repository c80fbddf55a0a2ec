"""Models domain: the SQL lifecycle model in dbt_like_sql/ as assets, its audits, and its settings."""

from __future__ import annotations

import dagster as dg

from lifecycle_assets.models.checks import build_audit_checks
from lifecycle_assets.models.recommendations import RECOMMENDATION_ASSETS
from lifecycle_assets.models.settings import LifecycleSettings
from lifecycle_assets.models.sql_models import build_model_assets


def models_definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[*build_model_assets(), *RECOMMENDATION_ASSETS],
        asset_checks=build_audit_checks(),
        resources={"lifecycle_settings": LifecycleSettings()},
    )
