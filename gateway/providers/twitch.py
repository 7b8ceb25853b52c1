"""Twitch EventSub (webhook transport): ``Twitch-Eventsub-Message-Signature: sha256=<hex>``.

The signature is the HMAC-SHA256, keyed with the subscription's ``secret``
(``TWITCH_WEBHOOK_SECRET``), of ``Twitch-Eventsub-Message-Id`` + ``-Message-Timestamp`` (RFC3339
with nanoseconds) + the raw body; built on the generic HMAC pieces. The timestamp is checked in
both directions; Twitch's docs ask receivers to refuse messages older than 10 minutes, so the
provider's ``default_tolerance`` is 600 (a source's own ``tolerance`` wins).

``Twitch-Eventsub-Message-Type`` says what a verified message is:

- ``webhook_callback_verification``: answered with the body's ``challenge`` as ``text/plain``
  (never stored);
- ``notification``: stored; the dedup id is ``Twitch-Eventsub-Message-Id`` (the same when Twitch
  resends a message);
- ``revocation``: stored too (as ``twitch/subscription.revoked``) so a function can react.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from gateway.providers import (
    Reply,
    echo_value,
    register_provider,
    signing_time,
    text_reply,
)
from gateway.providers.generic_hmac import HmacProvider
from gateway.webhook import PayloadError, Webhook

ID_HEADER = "twitch-eventsub-message-id"
TIMESTAMP_HEADER = "twitch-eventsub-message-timestamp"
SIGNATURE_HEADER = "twitch-eventsub-message-signature"
TYPE_HEADER = "twitch-eventsub-message-type"
VERIFICATION = "webhook_callback_verification"
NOTIFICATION = "notification"
REVOCATION = "revocation"
TWITCH_TOLERANCE = 600  # "make sure the timestamp isn't older than 10 minutes"


def rfc3339(at: int) -> str:
    """``at`` as Twitch writes message timestamps (RFC3339, nanoseconds, ``Z``)."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.000000000Z")


@register_provider
class TwitchProvider(HmacProvider):
    """Twitch EventSub webhook callbacks."""

    name = "twitch"
    default_tolerance = TWITCH_TOLERANCE
    body_kind = "json"
    env_var = None
    signs_timestamp = True
    verification = (
        "`Twitch-Eventsub-Message-Signature: sha256=<hex>` HMAC-SHA256 of message id + timestamp"
        " + body"
    )
    handshake_summary = "`webhook_callback_verification` answered with the challenge (text)"
    dedup_summary = "`Twitch-Eventsub-Message-Id`"
    preset: ClassVar[dict[str, Any]] = {
        "header": SIGNATURE_HEADER,
        "prefix": "sha256=",
        "timestamp_header": TIMESTAMP_HEADER,
        "timestamp_format": "iso",
        "signed_content": "{header:Twitch-Eventsub-Message-Id}{timestamp}{body}",
        "id_header": ID_HEADER,
    }
    user_options = ()

    @classmethod
    def secret_problem(cls, secret: str) -> str | None:
        if not 10 <= len(secret) <= 100 or not (secret.isascii() and secret.isprintable()):
            return "twitch: the subscription secret is 10 to 100 printable ASCII characters"
        return None

    def handshake(self, webhook: Webhook) -> Reply | None:
        kind = webhook.header(TYPE_HEADER)
        if kind != VERIFICATION:
            return None
        challenge = webhook.json.get("challenge")
        if not isinstance(challenge, str):
            raise PayloadError("webhook_callback_verification has no challenge")
        return text_reply(
            echo_value(challenge, "challenge"), "Twitch webhook_callback_verification answered"
        )

    def check_payload(self, webhook: Webhook) -> None:
        super().check_payload(webhook)
        kind = webhook.header(TYPE_HEADER)
        if kind not in (VERIFICATION, NOTIFICATION, REVOCATION):
            raise PayloadError(f"{TYPE_HEADER} is {kind!r}, not an EventSub message type")
        subscription = webhook.json.get("subscription")
        if not isinstance(subscription, dict) or not isinstance(subscription.get("type"), str):
            raise PayloadError("an EventSub message has subscription.type")

    def sign(
        self,
        body: bytes,
        *,
        timestamp: int | None = None,
        method: str = "POST",
        url: str | None = None,
    ) -> dict[str, str]:
        """A fresh message id, the timestamp and the signature, as Twitch sends a notification."""
        message_id = str(uuid.uuid4())
        stamp = rfc3339(signing_time(timestamp))
        content = message_id.encode() + stamp.encode() + body
        digest = hmac.new(self.secrets[0].encode(), content, hashlib.sha256).hexdigest()
        return {
            ID_HEADER: message_id,
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: "sha256=" + digest,
            TYPE_HEADER: NOTIFICATION,
        }

    def event_headers(self, event: str) -> dict[str, str]:
        return {
            "twitch-eventsub-subscription-type": event,
            "twitch-eventsub-subscription-version": "1",
        }
