"""Shopify: ``X-Shopify-Hmac-Sha256: <base64>``, HMAC-SHA256 of the raw body.

The key is the app's client secret (or the secret shown with a webhook made in the store admin).
Shopify now also sends a ``shopify-*`` header set (``shopify-hmac-sha256``, ``shopify-topic``,
``shopify-event-id``, ...) beside the ``X-Shopify-*`` one: either is read, the ``X-Shopify-*``
value first. Shopify signs no timestamp and none of its other headers: the dedup id
(``X-Shopify-Event-Id``, kept on retries and across subscriptions) is unsigned, so the receiver
also dedups on a digest of the verified body within the dedup window. ``X-Shopify-Topic`` names
the event.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Mapping

from gateway.providers import (
    MalformedSignature,
    MissingSignature,
    Provider,
    SignatureMismatch,
    any_signature_matches,
    register_provider,
)
from gateway.webhook import PayloadError, Webhook

HEADER = "x-shopify-hmac-sha256"
TOPIC_HEADER = "x-shopify-topic"
WEBHOOK_ID_HEADER = "x-shopify-webhook-id"
EVENT_ID_HEADER = "x-shopify-event-id"


def shopify_header(headers: Mapping[str, str], name: str) -> str | None:
    """``X-Shopify-<name>`` or Shopify's newer ``shopify-<name>``, given the ``x-`` name."""
    return headers.get(name) or headers.get(name.removeprefix("x-")) or None


_DIGEST_SIZE = hashlib.sha256().digest_size


def digest(secret: str, body: bytes) -> bytes:
    """The raw HMAC-SHA256 of ``body`` that Shopify base64-encodes into its header."""
    return hmac.new(secret.encode(), body, hashlib.sha256).digest()


def sign(secret: str, body: bytes) -> str:
    """The ``X-Shopify-Hmac-Sha256`` value Shopify sends for ``body``."""
    return base64.b64encode(digest(secret, body)).decode()


def parse_header(header: str) -> list[bytes]:
    """The raw digests in an ``X-Shopify-Hmac-Sha256`` value; MalformedSignature else.

    A repeated header arrives joined with ``", "``: each part is a candidate.
    """
    digests = []
    for part in (p.strip() for p in header.split(",")):
        try:
            raw = base64.b64decode(part, validate=True)
        except ValueError:  # binascii.Error, or non-ASCII text
            raise MalformedSignature("X-Shopify-Hmac-Sha256 is not base64") from None
        if len(raw) != _DIGEST_SIZE:
            raise MalformedSignature("X-Shopify-Hmac-Sha256 is not a SHA-256 digest")
        digests.append(raw)
    return digests


@register_provider
class ShopifyProvider(Provider):
    """Shopify app and store-admin webhooks."""

    name = "shopify"
    body_kind = "json"
    verification = "`X-Shopify-Hmac-Sha256` / `shopify-hmac-sha256`: base64 HMAC-SHA256 of the body"
    handshake_summary = "none"
    dedup_summary = "`X-Shopify-Event-Id` / `shopify-event-id`"

    def verify(self, body: bytes, headers: Mapping[str, str], *, now: float | None = None) -> None:
        header = (shopify_header(headers, HEADER) or "").strip()
        if not header:
            raise MissingSignature("X-Shopify-Hmac-Sha256 header is missing")
        received = parse_header(header)
        expected = [digest(secret, body) for secret in self.secrets]
        if not any_signature_matches(expected, received):
            raise SignatureMismatch("X-Shopify-Hmac-Sha256 does not match any configured secret")

    def event_headers(self, event: str) -> dict[str, str]:
        """``orders.create`` is Shopify's ``orders/create`` topic."""
        return {
            "x-shopify-topic": event.replace(".", "/", 1),
            "x-shopify-webhook-id": str(uuid.uuid4()),
        }

    def sign(
        self,
        body: bytes,
        *,
        timestamp: int | None = None,
        method: str = "POST",
        url: str | None = None,
    ) -> dict[str, str]:
        """``X-Shopify-Hmac-Sha256``; the topic and webhook id headers are the caller's."""
        return {HEADER: sign(self.secrets[0], body), "content-type": "application/json"}

    @classmethod
    def secret_problem(cls, secret: str) -> str | None:
        """An Admin API access token (``shpat_``, ``shpca_``, ``shppa_``) is not the secret."""
        if secret.startswith(("shpat_", "shpca_", "shppa_")):
            return "is a Shopify access token, not the app's client secret"
        return None

    def check_payload(self, webhook: Webhook) -> None:
        """``X-Shopify-Topic`` must be present and the body a JSON object."""
        if not shopify_header(webhook.headers, TOPIC_HEADER):
            raise PayloadError("X-Shopify-Topic (or shopify-topic) header is missing")
        super().check_payload(webhook)

    def delivery_id(self, webhook: Webhook) -> str | None:
        """``X-Shopify-Event-Id`` / ``shopify-event-id`` (one event, whatever the subscription),
        else the webhook id."""
        return shopify_header(webhook.headers, EVENT_ID_HEADER) or shopify_header(
            webhook.headers, WEBHOOK_ID_HEADER
        )
