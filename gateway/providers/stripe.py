"""Stripe: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=...][,v0=...]``.

The signature is checked by the ``stripe`` package's own verifier
(``stripe.WebhookSignature.verify_header``), once per configured secret, so any of several
``v1`` signatures and any of several secrets may match; ``v0`` (test mode's fake scheme) never
counts. The package only refuses timestamps older than the tolerance and reads the clock itself;
the gateway passes ``tolerance=None`` to it and checks the timestamp with
:func:`gateway.providers.check_timestamp`, which bounds both directions and takes an injectable
clock.
"""

from __future__ import annotations

from collections.abc import Mapping

import stripe

from gateway.providers import (
    MalformedSignature,
    MissingSignature,
    Provider,
    SignatureMismatch,
    check_timestamp,
    register_provider,
)
from gateway.webhook import Webhook

HEADER = "stripe-signature"


def parse_header(header: str) -> tuple[int, list[str]]:
    """``(timestamp, v1 signatures)`` from a ``Stripe-Signature`` value; MalformedSignature else."""
    if not header.isascii():
        raise MalformedSignature("Stripe-Signature header is not ASCII")
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise MalformedSignature("Stripe-Signature header has an item without '='")
        if key == "t":
            if not value.isdigit():
                raise MalformedSignature("Stripe-Signature timestamp is not an integer")
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None:
        raise MalformedSignature("Stripe-Signature header has no timestamp (t=)")
    if not signatures:
        raise MalformedSignature("Stripe-Signature header has no v1 signature")
    return timestamp, signatures


@register_provider
class StripeProvider(Provider):
    """Stripe webhook endpoints (snapshot and thin events)."""

    name = "stripe"
    body_kind = "json"

    def verify(self, body: bytes, headers: Mapping[str, str], *, now: float | None = None) -> None:
        header = headers.get(HEADER)
        if not header:
            raise MissingSignature("Stripe-Signature header is missing")
        timestamp, _ = parse_header(header)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise SignatureMismatch("body is not UTF-8, so Stripe cannot have signed it") from None
        for secret in self.secrets:
            try:
                stripe.WebhookSignature.verify_header(body, header, secret, tolerance=None)
            except stripe.SignatureVerificationError:
                continue
            break
        else:
            raise SignatureMismatch("no v1 signature matches any configured secret")
        check_timestamp(timestamp, self.tolerance, now)

    def delivery_id(self, webhook: Webhook) -> str | None:
        payload = webhook.json
        event_id = payload.get("id") if isinstance(payload, dict) else None
        return event_id if isinstance(event_id, str) else None
