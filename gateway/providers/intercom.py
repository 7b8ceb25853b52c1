"""Intercom: ``X-Hub-Signature: sha1=<hex>``, HMAC-SHA1 of the raw body.

The key is the app's client secret (Intercom's developer docs, "Webhooks > Signed
notifications": "the value of the X-Hub-Signature header is computed ... using your app's
client_secret"; the old v1 subscription ``hub_secret`` no longer exists for apps). There is no
timestamp, so replay protection comes from deduplication on the notification id. Intercom checks
a URL with ``HEAD`` (answered by the receiver) and sends a ``ping`` topic that is answered here
and never becomes an event.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping

from gateway.providers import (
    MalformedSignature,
    MissingSignature,
    Provider,
    Reply,
    SignatureMismatch,
    any_signature_matches,
    register_provider,
)
from gateway.webhook import Webhook

HEADER = "x-hub-signature"
_SHAPE = re.compile(r"^sha1=[0-9a-fA-F]{40}$")


@register_provider
class IntercomProvider(Provider):
    """Intercom webhook notifications."""

    name = "intercom"
    body_kind = "json"

    def verify(self, body: bytes, headers: Mapping[str, str], *, now: float | None = None) -> None:
        header = headers.get(HEADER)
        if not header:
            raise MissingSignature("X-Hub-Signature header is missing")
        if not _SHAPE.match(header):
            raise MalformedSignature("X-Hub-Signature must look like sha1=<40 hex digits>")
        expected = [
            "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
            for secret in self.secrets
        ]
        if not any_signature_matches(expected, [header.lower()]):
            raise SignatureMismatch("X-Hub-Signature does not match any configured secret")

    def handshake(self, webhook: Webhook) -> Reply | None:
        payload = webhook.json
        if isinstance(payload, dict) and payload.get("topic") == "ping":
            return Reply(200, {"status": "pong"})
        return None

    def delivery_id(self, webhook: Webhook) -> str | None:
        payload = webhook.json
        value = payload.get("id") if isinstance(payload, dict) else None
        return value if isinstance(value, str) and value else None
