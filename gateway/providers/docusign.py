"""DocuSign Connect: ``X-DocuSign-Signature-1`` ... ``-N``, HMAC-SHA256 of the body, base64.

Connect signs the raw body with each active HMAC key of the account and sends one header per key
(``X-DocuSign-Signature-1``, ``-2``, ...): the request is authentic when any header matches any
configured key (``DOCUSIGN_WEBHOOK_SECRET``, comma-separated while keys are rotated). At most
:data:`MAX_HEADERS` headers are considered (DocuSign allows a handful of keys). DocuSign signs no
timestamp: replays are bounded by the dedup id and the body digest.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping

from gateway.providers import (
    MalformedSignature,
    MissingSignature,
    Provider,
    SignatureMismatch,
    any_signature_matches,
    joined_key,
    register_provider,
)
from gateway.providers.schemes import decode_signature, hmac_digests
from gateway.webhook import Webhook

HEADER = re.compile(r"x-docusign-signature-([1-9][0-9]?)")
MAX_HEADERS = 20


def delivery_key(payload: object) -> str | None:
    """``<envelopeId>-<event>-<generatedDateTime>``: one Connect message, the same on retries."""
    if not isinstance(payload, dict):
        return None
    data = payload.get("data")
    envelope = data.get("envelopeId") if isinstance(data, dict) else None
    return joined_key(envelope, payload.get("event"), payload.get("generatedDateTime"))


@register_provider
class DocuSignProvider(Provider):
    """DocuSign Connect (eSignature) JSON notifications with HMAC security."""

    name = "docusign"
    body_kind = "json"
    verification = (
        "any `X-DocuSign-Signature-<n>`: base64 HMAC-SHA256 of the body (Connect HMAC key)"
    )
    handshake_summary = "none"
    dedup_summary = "`envelopeId`-`event`-`generatedDateTime`"

    def verify(self, body: bytes, headers: Mapping[str, str], *, now: float | None = None) -> None:
        values = [v for k, v in headers.items() if HEADER.fullmatch(k)][:MAX_HEADERS]
        if not values:
            raise MissingSignature("X-DocuSign-Signature-1 header is missing")
        received = [
            raw
            for value in values
            for part in value.split(",")
            if (raw := decode_signature(part.strip(), "base64")) is not None and len(raw) == 32
        ]
        if not received:
            raise MalformedSignature("X-DocuSign-Signature-<n> holds no base64 HMAC-SHA256")
        expected = hmac_digests([s.encode() for s in self.secrets], "sha256", body)
        if not any_signature_matches(expected, received):
            raise SignatureMismatch("no X-DocuSign-Signature matches any configured HMAC key")

    def delivery_id(self, webhook: Webhook) -> str | None:
        return delivery_key(webhook.json)

    def sign(
        self,
        body: bytes,
        *,
        timestamp: int | None = None,
        method: str = "POST",
        url: str | None = None,
    ) -> dict[str, str]:
        """One ``x-docusign-signature-<n>`` per configured key, as Connect sends them."""
        digests = hmac_digests([s.encode() for s in self.secrets], "sha256", body)
        return {
            f"x-docusign-signature-{n}": base64.b64encode(d).decode()
            for n, d in enumerate(digests, start=1)
        }
