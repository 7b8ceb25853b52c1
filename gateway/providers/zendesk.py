"""Zendesk webhooks: ``X-Zendesk-Webhook-Signature``, base64 HMAC-SHA256 of
``{timestamp}{body}`` (no separator) with the webhook's signing secret, used as text.

``X-Zendesk-Webhook-Signature-Timestamp`` is ISO-8601 (``2024-05-01T10:00:00Z``) and signed, so
it is checked against ``tolerance`` in both directions. Event webhooks carry an event ``id``
(the dedup id); trigger and automation webhooks (a body the admin writes) fall back to
``X-Zendesk-Webhook-Id`` + ``X-Zendesk-Webhook-Invocation-Id``.

Zendesk signs test requests sent for a webhook that does not exist yet with a static, public
secret (:data:`TEST_SECRET`): ``check`` refuses it as a configured secret, since anyone can sign
with it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.providers import joined_key, register_provider
from gateway.providers.generic_hmac import HmacProvider
from gateway.webhook import Webhook

#: the signing secret Zendesk documents for test requests (public: never a production secret)
TEST_SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="
WEBHOOK_ID_HEADER = "x-zendesk-webhook-id"
INVOCATION_ID_HEADER = "x-zendesk-webhook-invocation-id"
#: how an event webhook's ``type`` starts (trigger and automation bodies are the admin's own)
EVENT_TYPE_PREFIX = "zen:event-type:"


def zendesk_id(webhook: Webhook) -> str | None:
    """The event ``id`` of an event webhook, else ``<webhook id>-<invocation id>``."""
    payload = webhook.json
    if isinstance(payload, dict) and str(payload.get("type", "")).startswith(EVENT_TYPE_PREFIX):
        event_id = payload.get("id")
        if isinstance(event_id, str) and event_id:
            return event_id
    return joined_key(webhook.header(WEBHOOK_ID_HEADER), webhook.header(INVOCATION_ID_HEADER))


@register_provider
class ZendeskProvider(HmacProvider):
    """Zendesk webhooks: event subscriptions, triggers and automations (JSON bodies)."""

    name = "zendesk"
    body_kind = "json"
    env_var = None
    signs_timestamp = True
    verification = (
        "`X-Zendesk-Webhook-Signature`: base64 HMAC-SHA256 of `{timestamp}{body}` "
        "(ISO-8601 `X-Zendesk-Webhook-Signature-Timestamp`)"
    )
    handshake_summary = "none"
    dedup_summary = "event `id`, else `X-Zendesk-Webhook-Id`-`X-Zendesk-Webhook-Invocation-Id`"
    preset: ClassVar[dict[str, Any]] = {
        "header": "X-Zendesk-Webhook-Signature",
        "encoding": "base64",
        "timestamp_header": "X-Zendesk-Webhook-Signature-Timestamp",
        "timestamp_format": "iso",
        "signed_content": "{timestamp}{body}",
    }
    user_options = ()

    @classmethod
    def secret_problem(cls, secret: str) -> str | None:
        if secret.strip() == TEST_SECRET:
            return "is Zendesk's public test signing secret: anyone can sign with it"
        return super().secret_problem(secret)

    def delivery_id(self, webhook: Webhook) -> str | None:
        return zendesk_id(webhook)
