"""Sentry integration platform: ``Sentry-Hook-Signature``, hex HMAC-SHA256 of the raw body.

The key is the integration's **client secret** (``SENTRY_WEBHOOK_SECRET``). Sentry also sends
``Sentry-Hook-Timestamp`` (Unix seconds), but does not sign it: checking an unsigned timestamp
proves nothing, so replays are bounded by the ``Request-ID`` dedup id and the body digest.
``Sentry-Hook-Resource`` (``issue``, ``event_alert``, ``metric_alert``, ``error``, ``comment``,
``installation``) names the resource; the body's ``action`` says what happened to it.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from gateway.providers import register_provider, signing_time
from gateway.providers.generic_hmac import HmacProvider
from gateway.webhook import PayloadError, Webhook

RESOURCE_HEADER = "sentry-hook-resource"
#: prefixes of Sentry auth tokens (organization, user), which are not the client secret
TOKEN_PREFIXES = ("sntrys_", "sntryu_")


@register_provider
class SentryProvider(HmacProvider):
    """Sentry integration platform (internal and public integrations) webhooks."""

    name = "sentry"
    body_kind = "json"
    env_var = None
    verification = "`Sentry-Hook-Signature`: hex HMAC-SHA256 of the body (client secret)"
    handshake_summary = "none"
    dedup_summary = "`Request-ID`"
    preset: ClassVar[dict[str, Any]] = {
        "header": "Sentry-Hook-Signature",
        "id_header": "Request-ID",
    }
    user_options = ()

    def check_payload(self, webhook: Webhook) -> None:
        """``Sentry-Hook-Resource`` must be present and the body a JSON object."""
        if not webhook.header(RESOURCE_HEADER):
            raise PayloadError("Sentry-Hook-Resource header is missing")
        super().check_payload(webhook)

    def event_headers(self, event: str) -> dict[str, str]:
        """``issue.created`` is the ``issue`` resource; its action travels in the body."""
        return {
            RESOURCE_HEADER: event.split(".")[0],
            "request-id": str(uuid.uuid4()),
            "sentry-hook-timestamp": str(signing_time(None)),
        }

    @classmethod
    def secret_problem(cls, secret: str) -> str | None:
        if secret.startswith(TOKEN_PREFIXES):
            return "is a Sentry auth token, not the integration's client secret"
        return super().secret_problem(secret)
