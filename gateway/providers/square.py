"""Square: ``x-square-hmacsha256-signature``, base64 HMAC-SHA256 of the notification URL followed
by the body; a preset of the generic HMAC pieces.

As ``square.utils.webhooks_helper.verify_signature`` in the ``squareup`` SDK (the tests use its
published vector and check the gateway's signatures with it): the key is the subscription's
**signature key** used as text, and the URL is the notification URL exactly as configured in the
Developer Console (option ``url``, zero-config ``SQUARE_WEBHOOK_URL``): behind a proxy the gateway
cannot see it. Square signs no timestamp: replays are bounded by ``event_id`` dedup (kept on
retries) and the body digest. The legacy ``x-square-signature`` (HMAC-SHA1) is not accepted.
"""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.providers import register_provider
from gateway.providers.generic_hmac import HmacProvider


@register_provider
class SquareProvider(HmacProvider):
    """Square webhook subscriptions."""

    name = "square"
    body_kind = "json"
    env_var = None
    verification = (
        "`x-square-hmacsha256-signature`: base64 HMAC-SHA256 of `{url}{body}` (signature key)"
    )
    handshake_summary = "none"
    dedup_summary = "`event_id`"
    env_options: ClassVar[dict[str, str]] = {"url": "SQUARE_WEBHOOK_URL"}
    preset: ClassVar[dict[str, Any]] = {
        "header": "x-square-hmacsha256-signature",
        "encoding": "base64",
        "signed_content": "{url}{body}",
        "id_path": "event_id",
    }
    user_options = ("url",)
