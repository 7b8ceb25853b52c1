"""Mux: ``Mux-Signature: t=<unix>,v1=<hex>``, HMAC-SHA256 of ``{t}.{body}``; the generic preset.

As ``webhooks.verifySignature`` / ``webhooks.unwrap`` in ``@mux/mux-node`` (the tests cross-check
with it): the key is the webhook endpoint's **signing secret** (``MUX_WEBHOOK_SECRET``; each
endpoint has its own), used as text; any ``v1`` value may match. The SDK refuses timestamps older
than 5 minutes; the gateway checks ``tolerance`` (default 300 s) in both directions. The event's
``id`` is the dedup id.
"""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.providers import register_provider
from gateway.providers.generic_hmac import HmacProvider


@register_provider
class MuxProvider(HmacProvider):
    """Mux Video and Data webhooks."""

    name = "mux"
    body_kind = "json"
    env_var = None
    signs_timestamp = True
    verification = "`Mux-Signature: t=<unix>,v1=<hex>` HMAC-SHA256 of `{t}.{body}`"
    dedup_summary = "payload `id`"
    preset: ClassVar[dict[str, Any]] = {
        "header": "Mux-Signature",
        "signature_key": "v1",
        "timestamp_key": "t",
        "signed_content": "{timestamp}.{body}",
        "id_path": "id",
    }
    user_options = ()
