"""Calendly: ``Calendly-Webhook-Signature: t=<unix>,v1=<hex>``, HMAC-SHA256 of ``{t}.{body}``; a
preset of the generic HMAC pieces.

Calendly publishes no verifier library; its webhook-signatures guide computes the digest with the
**webhook signing key** (chosen when the subscription is created with a personal access token, or
generated for an OAuth app) used as text, ``t`` in Unix seconds, and refuses signatures older than
three minutes: the provider's ``default_tolerance`` is 180 s (a source's own ``tolerance`` wins),
checked in both directions. Calendly sends no event id: the dedup id is the ``event`` with the
``payload.uri`` of the invitee (or no-show, routing form submission) it is about, which retries
keep.
"""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.providers import joined_key, register_provider
from gateway.providers.generic_hmac import HmacProvider
from gateway.webhook import Webhook


def event_key(payload: Any) -> str | None:
    """``<event>-<payload.uri>``: what the event is about; ``None`` when either is missing."""
    if not isinstance(payload, dict):
        return None
    inner = payload.get("payload")
    return joined_key(payload.get("event"), inner.get("uri") if isinstance(inner, dict) else None)


@register_provider
class CalendlyProvider(HmacProvider):
    """Calendly webhook subscriptions (API v2)."""

    name = "calendly"
    default_tolerance = 180
    body_kind = "json"
    env_var = None
    signs_timestamp = True
    verification = (
        "`Calendly-Webhook-Signature: t=<unix>,v1=<hex>` HMAC-SHA256 of `{t}.{body}`"
        " (webhook signing key)"
    )
    handshake_summary = "none"
    dedup_summary = "`event`-`payload.uri` (no event id)"
    preset: ClassVar[dict[str, Any]] = {
        "header": "Calendly-Webhook-Signature",
        "signature_key": "v1",
        "timestamp_key": "t",
        "signed_content": "{timestamp}.{body}",
    }
    user_options = ()

    def delivery_id(self, webhook: Webhook) -> str | None:
        return event_key(webhook.json)
