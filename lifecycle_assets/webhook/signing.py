"""Signing the way SendGrid signs Event Webhook requests: used by the fake SendGrid, the tests and the benchmark."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader


def new_private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def signature_headers(private_key: ec.EllipticCurvePrivateKey, body: bytes, timestamp: int) -> dict[str, str]:
    """How SendGrid signs a request: ECDSA P-256 / SHA-256 over timestamp + body, base64 DER. For the fake and the benchmark."""
    signature = private_key.sign(str(timestamp).encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        EventWebhookHeader.SIGNATURE: base64.b64encode(signature).decode(),
        EventWebhookHeader.TIMESTAMP: str(timestamp),
    }


def public_key_as_sendgrid_shows_it(private_key: ec.EllipticCurvePrivateKey) -> str:
    """Base64 of the DER SubjectPublicKeyInfo: what SendGrid's settings page displays."""
    der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()
