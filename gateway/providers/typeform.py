"""Typeform: ``Typeform-Signature: sha256=<base64>``, HMAC-SHA256 of the raw body; the generic
preset.

Typeform's "Secure your webhooks" page gives the recipe (typeform.com/developers/webhooks/
secure-your-webhooks); ``@typeform/api-client`` only manages webhooks and has no verifier, so
the tests compute it as the docs do. The key is the webhook's **secret**, a random string you
choose and set on the webhook (``TYPEFORM_WEBHOOK_SECRET``). Typeform signs no timestamp: replays
are bounded by ``event_id`` and the body-digest dedup.
"""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.providers import register_provider
from gateway.providers.generic_hmac import HmacProvider


@register_provider
class TypeformProvider(HmacProvider):
    """Typeform form webhooks (complete and partial responses)."""

    name = "typeform"
    body_kind = "json"
    env_var = None
    verification = "`Typeform-Signature: sha256=<base64>` HMAC-SHA256 of the body"
    dedup_summary = "payload `event_id`"
    preset: ClassVar[dict[str, Any]] = {
        "header": "Typeform-Signature",
        "encoding": "base64",
        "prefix": "sha256=",
        "id_path": "event_id",
    }
    user_options = ()
