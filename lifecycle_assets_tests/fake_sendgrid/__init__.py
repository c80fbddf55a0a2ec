"""A fake SendGrid over real HTTP, validating requests against SendGrid's published OpenAPI documents."""

from .openapi import SpecCatalog, SpecError, ValidationProblem
from .server import DEFAULT_SPEC_DIR, FAULT_KINDS, SUPPRESSION_KINDS, Fault, FakeSendGrid, RequestRecord

__all__ = [
    "DEFAULT_SPEC_DIR",
    "FAULT_KINDS",
    "SUPPRESSION_KINDS",
    "FakeSendGrid",
    "Fault",
    "RequestRecord",
    "SpecCatalog",
    "SpecError",
    "ValidationProblem",
]
