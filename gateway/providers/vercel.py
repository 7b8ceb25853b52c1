"""Vercel: ``x-vercel-signature``, hex HMAC-SHA1 of the raw body; the generic preset.

Vercel's docs ("Securing webhooks", vercel.com/docs/webhooks/webhooks-api) give the recipe; no
Vercel SDK on npm (``@vercel/sdk``) or PyPI (``vercel``) verifies webhooks, so the tests compute
it as the docs do. The key is the account webhook's **secret** (shown once when the webhook is
created) or, for an integration's webhooks, the integration's **client secret**
(``VERCEL_WEBHOOK_SECRET``). Vercel signs no timestamp: replays are bounded by the body-digest
dedup and the delivery's ``id``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.providers import register_provider
from gateway.providers.generic_hmac import HmacProvider


@register_provider
class VercelProvider(HmacProvider):
    """Vercel account and integration webhooks."""

    name = "vercel"
    body_kind = "json"
    env_var = None
    verification = "`x-vercel-signature`: hex HMAC-SHA1 of the body (webhook or client secret)"
    dedup_summary = "payload `id`"
    preset: ClassVar[dict[str, Any]] = {
        "header": "x-vercel-signature",
        "algorithm": "sha1",
        "id_path": "id",
    }
    user_options = ()
