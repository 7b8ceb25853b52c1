"""Paddle Billing: ``Paddle-Signature: ts=<unix>;h1=<hex>``, HMAC-SHA256 of ``{ts}:{body}``; a
preset of the generic HMAC pieces.

As ``paddle_billing.Notifications`` in ``paddle-python-sdk`` (``Verifier``/``PaddleSignature``; the
tests check the gateway's signatures with it and verify its published vector): the key is the
notification destination's **endpoint secret key** (``pdl_ntfset_...``) used as text; ``ts`` is Unix
seconds; a header may carry several ``h1`` (any may match any configured key). The SDK allows 5 s of
drift in both directions, the provider's ``default_tolerance`` (a source's own ``tolerance`` wins,
for a receiver whose clock cannot be kept that close). Dedup by ``event_id`` (kept on retries;
``notification_id`` names one delivery). Paddle Classic (an RSA ``p_signature`` in a form body) is
not this provider.
"""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.providers import register_provider
from gateway.providers.generic_hmac import HmacProvider

KEY_PREFIX = "pdl_"


@register_provider
class PaddleProvider(HmacProvider):
    """Paddle Billing notifications (webhooks)."""

    name = "paddle"
    default_tolerance = 5
    body_kind = "json"
    env_var = None
    signs_timestamp = True
    verification = (
        "`Paddle-Signature: ts=<unix>;h1=<hex>` HMAC-SHA256 of `{ts}:{body}` (endpoint secret key)"
    )
    handshake_summary = "none"
    dedup_summary = "`event_id` (kept on retries)"
    preset: ClassVar[dict[str, Any]] = {
        "header": "Paddle-Signature",
        "signature_key": "h1",
        "timestamp_key": "ts",
        "pair_separator": ";",
        "signed_content": "{timestamp}:{body}",
        "id_path": "event_id",
    }
    user_options = ()

    @classmethod
    def secret_problem(cls, secret: str) -> str | None:
        if not secret.startswith(KEY_PREFIX):
            return (
                f"paddle: an endpoint secret key starts with {KEY_PREFIX}ntfset_ (Developer tools"
                " > Notifications > Edit destination)"
            )
        return super().secret_problem(secret)
