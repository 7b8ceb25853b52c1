"""Intercom: ``X-Hub-Signature: sha1=<40 hex>``, HMAC-SHA1 of the raw body.

Which key signs? Intercom's own v1.0 API reference, "Signed Notifications"
(developers.intercom.com/intercom-api-reference/v1.0/reference/signed-notifications), says the
key is the ``hub_secret`` field the caller put on a webhook *subscription* of that old API. The
current Developer Hub guide (developers.intercom.com/docs/webhooks/setting-up-webhooks) creates
subscriptions per app, with no ``hub_secret`` field; the current material found for apps
(hookdeck/webhook-skills' Intercom verifier, merged as hookdeck/webhook-skills#46, and other
integration write-ups) signs with the app's ``client_secret`` from the Developer Hub's Basic Info
page. The retrievable official pages did not themselves state the key for Developer Hub apps.
So: configure the app's client secret; a legacy ``hub_secret`` may be configured beside it, since
any configured secret may match.

There is no timestamp in the scheme, so ``tolerance`` is unused and replay protection comes from
deduplication on the notification ``id``. Intercom checks a new URL with ``HEAD`` (answered by the
receiver) and sends a ``ping`` topic, answered here; a ping never becomes an event.
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
PREFIX = "sha1="
_HEX40 = re.compile(r"[0-9a-fA-F]{40}")


def parse_header(header: str) -> list[str]:
    """The lower-case hex digests in an ``X-Hub-Signature`` value; MalformedSignature else.

    A repeated header arrives joined with ``", "``: each part is a candidate.
    """
    digests = []
    for part in (p.strip() for p in header.split(",")):
        if not part.startswith(PREFIX):
            raise MalformedSignature("X-Hub-Signature must start with sha1=")
        digest = part[len(PREFIX) :]
        if not _HEX40.fullmatch(digest):
            raise MalformedSignature("X-Hub-Signature must be sha1= and 40 hex digits")
        digests.append(digest.lower())
    return digests


@register_provider
class IntercomProvider(Provider):
    """Intercom webhook notifications."""

    name = "intercom"
    body_kind = "json"
    verification = "`X-Hub-Signature: sha1=<hex>` HMAC-SHA1 of the body"
    handshake_summary = "`ping` -> 200"
    dedup_summary = "notification `id`"
    env_var = "INTERCOM_CLIENT_SECRET"

    def verify(self, body: bytes, headers: Mapping[str, str], *, now: float | None = None) -> None:
        header = headers.get(HEADER, "").strip()
        if not header:
            raise MissingSignature("X-Hub-Signature header is missing")
        received = parse_header(header)
        expected = [hmac.new(s.encode(), body, hashlib.sha1).hexdigest() for s in self.secrets]
        if not any_signature_matches(expected, received):
            raise SignatureMismatch("X-Hub-Signature does not match any configured secret")

    def sign(
        self,
        body: bytes,
        *,
        timestamp: int | None = None,
        method: str = "POST",
        url: str | None = None,
    ) -> dict[str, str]:
        """``X-Hub-Signature: sha1=<hex>`` of the body, with the first secret."""
        digest = hmac.new(self.secrets[0].encode(), body, hashlib.sha1).hexdigest()
        return {HEADER: PREFIX + digest, "content-type": "application/json"}

    def handshake(self, webhook: Webhook) -> Reply | None:
        """A ``ping`` notification (sent when a subscription is saved) gets a 200, no event."""
        payload = webhook.json
        if isinstance(payload, dict) and payload.get("topic") == "ping":
            return Reply(200, {"ok": True})
        return None

    def delivery_id(self, webhook: Webhook) -> str | None:
        """The ``notif_...`` id, kept across redeliveries; ``None`` when null (a ``ping``)."""
        payload = webhook.json
        value = payload.get("id") if isinstance(payload, dict) else None
        return value if isinstance(value, str) and value else None
