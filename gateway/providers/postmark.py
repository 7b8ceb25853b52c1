"""Postmark: no signature; HTTP Basic credentials that Postmark sends with every webhook.

A Postmark webhook (Servers → a message stream → Webhooks) may carry **Basic auth** credentials
("HTTP Auth" in the webhook settings, ``HttpAuth`` in the Webhooks API, or
``https://user:password@host/...`` in the URL). ``POSTMARK_WEBHOOK_SECRET`` holds
``user:password`` (comma-separated pairs while rotating), compared in constant time. Postmark
also publishes the IP ranges its webhooks come from; allowlisting them at a proxy is a second,
independent check the gateway leaves to the network. Nothing is signed, so a captured request
stays valid: replays are bounded by the dedup id (``X-PM-Webhook-Trace-Id``, stable across an
event's retries, when sent) and the body digest.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from gateway.providers import joined_key, register_provider
from gateway.providers.generic_hmac import HmacProvider
from gateway.webhook import Webhook

TRACE_HEADER = "x-pm-webhook-trace-id"
#: RecordType -> (event name suffix, the field with the event's time)
RECORD_TYPES: dict[str, tuple[str, str]] = {
    "Delivery": ("message.delivered", "DeliveredAt"),
    "Bounce": ("message.bounced", "BouncedAt"),
    "SpamComplaint": ("message.complained", "BouncedAt"),
    "Open": ("message.opened", "ReceivedAt"),
    "Click": ("message.clicked", "ReceivedAt"),
    "SubscriptionChange": ("subscription.changed", "ChangedAt"),
    "Inbound": ("inbound.received", "Date"),
}


def record_type(payload: dict[str, Any]) -> str:
    """``RecordType``; an inbound message (which has none) is ``Inbound``."""
    kind = payload.get("RecordType")
    if isinstance(kind, str) and kind:
        return kind
    return "Inbound" if "FromFull" in payload or "MessageID" in payload else ""


def record_key(payload: dict[str, Any], trace_id: str | None = None) -> str | None:
    """``X-PM-Webhook-Trace-Id`` (stable across the retries of one event) when Postmark sends
    it, else ``<RecordType>-<MessageID>-<recipient>-<time>``: one record (a message has one
    delivery per recipient, and opens or clicks repeat), the same on Postmark's retries."""
    if trace_id:
        return trace_id
    kind = record_type(payload)
    if kind == "Inbound":
        return joined_key(kind, payload.get("MessageID"))
    _, time_field = RECORD_TYPES.get(kind, ("", "ReceivedAt"))
    recipient = payload.get("Recipient") or payload.get("Email")
    return joined_key(kind, payload.get("MessageID"), recipient, payload.get(time_field))


@register_provider
class PostmarkProvider(HmacProvider):
    """Postmark webhooks (bounce, delivery, open, click, spam complaint, subscription, inbound)."""

    name = "postmark"
    body_kind = "json"
    env_var = None
    verification = "`Authorization: Basic` credentials set on the webhook (`user:password`)"
    handshake_summary = "none"
    dedup_summary = "`X-PM-Webhook-Trace-Id`, else `RecordType`-`MessageID`-recipient-time"
    preset: ClassVar[dict[str, Any]] = {"mode": "basic", "header": "Authorization"}
    user_options = ()

    def delivery_id(self, webhook: Webhook) -> str | None:
        return record_key(webhook.json, webhook.header(TRACE_HEADER))

    def event_headers(self, event: str) -> dict[str, str]:
        """A fresh trace id, as Postmark sends with each event."""
        return {TRACE_HEADER: str(uuid.uuid4())}
