"""Zoom: ``x-zm-signature: v0=<hex>``, HMAC-SHA256 of ``v0:{timestamp}:{body}``, and the
``endpoint.url_validation`` challenge; built on the generic HMAC pieces.

The key is the app's **secret token** (``ZOOM_WEBHOOK_SECRET``); ``x-zm-request-timestamp`` is
Unix seconds, checked against ``tolerance`` in both directions. When an event subscription's
URL is saved (and every 72 hours), Zoom posts a signed ``endpoint.url_validation`` with a
``plainToken``: after verification the gateway answers ``{"plainToken", "encryptedToken"}``, the
latter the hex HMAC-SHA256 of the plain token with the secret token. It is never stored.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, ClassVar

from gateway.providers import Reply, echo_value, joined_key, register_provider
from gateway.providers.generic_hmac import HmacProvider
from gateway.webhook import PayloadError, Webhook

VALIDATION = "endpoint.url_validation"


def event_key(payload: Any) -> str | None:
    """``<event>-<event_ts>-<object uuid or id>``: Zoom sends no event id; retries keep these."""
    if not isinstance(payload, dict):
        return None
    inner = payload.get("payload")
    obj = inner.get("object") if isinstance(inner, dict) else None
    ident = (obj.get("uuid") or obj.get("id")) if isinstance(obj, dict) else None
    return joined_key(payload.get("event"), payload.get("event_ts"), ident)


@register_provider
class ZoomProvider(HmacProvider):
    """Zoom app event subscriptions (webhooks)."""

    name = "zoom"
    body_kind = "json"
    env_var = None
    signs_timestamp = True
    verification = (
        "`x-zm-signature: v0=<hex>` HMAC-SHA256 of `v0:{timestamp}:{body}` (secret token)"
    )
    handshake_summary = "`endpoint.url_validation` answered with the encrypted token"
    dedup_summary = "`event`-`event_ts`-object id"
    preset: ClassVar[dict[str, Any]] = {
        "header": "x-zm-signature",
        "prefix": "v0=",
        "timestamp_header": "x-zm-request-timestamp",
        "signed_content": "v0:{timestamp}:{body}",
    }
    user_options = ()

    def handshake(self, webhook: Webhook) -> Reply | None:
        payload = webhook.json
        if payload.get("event") != VALIDATION:
            return None
        inner = payload.get("payload")
        token = inner.get("plainToken") if isinstance(inner, dict) else None
        if not isinstance(token, str):
            raise PayloadError("endpoint.url_validation has no payload.plainToken")
        plain = echo_value(token, "payload.plainToken")
        encrypted = hmac.new(self.secrets[0].encode(), plain.encode(), hashlib.sha256).hexdigest()
        return Reply(
            200,
            {"plainToken": plain, "encryptedToken": encrypted},
            note="Zoom endpoint.url_validation answered",
        )

    def delivery_id(self, webhook: Webhook) -> str | None:
        return event_key(webhook.json)
