"""PagerDuty v3 webhooks: ``X-PagerDuty-Signature: v1=<hex>[,v1=<hex>...]``, HMAC-SHA256 of the
raw body with the webhook subscription's secret.

PagerDuty sends one ``v1`` signature per secret while a secret is rotated: any match is enough
(and the gateway's own comma-separated secrets rotate on this side). It signs no timestamp:
replays are bounded by the event id (``event.id``) and the body digest.
"""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.providers import register_provider
from gateway.providers.generic_hmac import HmacProvider
from gateway.webhook import PayloadError, Webhook


@register_provider
class PagerDutyProvider(HmacProvider):
    """PagerDuty v3 webhook subscriptions."""

    name = "pagerduty"
    body_kind = "json"
    env_var = None
    verification = "`X-PagerDuty-Signature: v1=<hex>[,v1=...]`: HMAC-SHA256 of the body"
    handshake_summary = "none"
    dedup_summary = "`event.id`"
    preset: ClassVar[dict[str, Any]] = {
        "header": "X-PagerDuty-Signature",
        "prefix": "v1=",
        "id_path": "event.id",
    }
    user_options = ()

    def check_payload(self, webhook: Webhook) -> None:
        """The body must be a JSON object with an ``event`` object (every v3 payload has one)."""
        super().check_payload(webhook)
        if not isinstance(webhook.json.get("event"), dict):
            raise PayloadError("a PagerDuty v3 body has an event object")
