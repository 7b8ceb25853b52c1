"""SendGrid (Twilio SendGrid Event Webhook): ECDSA P-256, built on the generic pieces.

As ``sendgrid.helpers.eventwebhook.EventWebhook`` (the tests sign and verify with it): the
signature ``X-Twilio-Email-Event-Webhook-Signature`` is a base64 DER ECDSA-SHA256 signature of
``X-Twilio-Email-Event-Webhook-Timestamp`` (Unix seconds) followed by the raw body, checked
against the **verification key** shown under Settings → Mail Settings → Event Webhook (base64
DER, configured as ``SENDGRID_WEBHOOK_SECRET``). The SDK checks no time; the gateway checks
``tolerance`` in both directions. The body is a JSON array: one event per item.
"""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.providers import register_provider
from gateway.providers.generic_hmac import HmacProvider


@register_provider
class SendGridProvider(HmacProvider):
    """SendGrid's signed Event Webhook."""

    name = "sendgrid"
    body_kind = "json"
    env_var = None
    signs_timestamp = True
    verification = (
        "`X-Twilio-Email-Event-Webhook-Signature`: ECDSA P-256 (public key) of `{timestamp}{body}`"
    )
    handshake_summary = "none"
    dedup_summary = "each item's `sg_event_id`"
    array_body = True
    preset: ClassVar[dict[str, Any]] = {
        "mode": "ecdsa",
        "header": "X-Twilio-Email-Event-Webhook-Signature",
        "encoding": "base64",
        "timestamp_header": "X-Twilio-Email-Event-Webhook-Timestamp",
        "signed_content": "{timestamp}{body}",
    }
    user_options = ()
