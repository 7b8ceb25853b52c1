"""Lemon Squeezy: ``X-Signature``, the hex HMAC-SHA256 of the body; built on the generic pieces.

The key is the **signing secret** typed when the webhook was created
(``LEMONSQUEEZY_WEBHOOK_SECRET``). The event is named in ``X-Event-Name`` and, signed, in
``meta.event_name``. Nothing else is signed and there is no delivery id: replays are bounded by
the dedup id (event, resource and its ``updated_at``) and the body digest.
"""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.providers import joined_key, register_provider
from gateway.providers.generic_hmac import HmacProvider
from gateway.webhook import Webhook


def changed_at(payload: Any) -> Any:
    """``data.attributes.updated_at``, else ``created_at``: when the resource changed."""
    data = payload.get("data") if isinstance(payload, dict) else None
    attributes = data.get("attributes") if isinstance(data, dict) else None
    if not isinstance(attributes, dict):
        return None
    return attributes.get("updated_at") or attributes.get("created_at")


def event_key(payload: Any, event: str | None = None) -> str | None:
    """``<event_name>-<data.type>-<data.id>-<changed_at>``: one change of one resource;
    Lemon Squeezy's retries resend the same body."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        return None
    meta = payload.get("meta")
    name = meta.get("event_name") if isinstance(meta, dict) else None
    return joined_key(name or event, data.get("type"), data.get("id"), changed_at(payload))


@register_provider
class LemonSqueezyProvider(HmacProvider):
    """Lemon Squeezy store webhooks."""

    name = "lemonsqueezy"
    body_kind = "json"
    env_var = None
    verification = "`X-Signature`: hex HMAC-SHA256 of the body (signing secret)"
    handshake_summary = "none"
    dedup_summary = "`meta.event_name`-`data.type`-`data.id`-`updated_at`"
    preset: ClassVar[dict[str, Any]] = {"header": "X-Signature"}
    user_options = ()

    def event_headers(self, event: str) -> dict[str, str]:
        return {"x-event-name": event}

    def delivery_id(self, webhook: Webhook) -> str | None:
        return event_key(webhook.json, webhook.header("x-event-name"))
