"""Activation domain: templates, audiences and letters pushed to SendGrid, the push job and its sensor."""

from __future__ import annotations

import dagster as dg

from lifecycle_assets.activation.assets import activation_assets, activation_checks, push_to_sendgrid
from lifecycle_assets.activation.lift import letter_lift
from lifecycle_assets.activation.resources import sendgrid_resource_from_environment
from lifecycle_assets.activation.sensors import push_after_letters_build


def activation_definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[*activation_assets, letter_lift],
        asset_checks=activation_checks,
        jobs=[push_to_sendgrid],
        sensors=[push_after_letters_build],
        resources={"sendgrid": sendgrid_resource_from_environment()},
    )
