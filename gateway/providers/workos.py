"""WorkOS: ``WorkOS-Signature: t=<ms>, v1=<hex>``, HMAC-SHA256 of ``{t}.{body}``; a preset of the
generic HMAC pieces.

As ``workos.webhooks`` in the ``workos`` SDK (the tests verify the gateway's signatures with it):
the key is the endpoint's **secret** as shown in the WorkOS dashboard, used as text; ``t`` is Unix
**milliseconds**; the pairs are joined by ``", "`` (the SDK splits on exactly that). The SDK allows
180 s of skew in both directions, the provider's ``default_tolerance`` (a source's own ``tolerance``
wins); the gateway checks it in both directions. Dedup by the event's ``id`` (``event_...``), kept
on retries.
"""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.providers import register_provider
from gateway.providers.generic_hmac import HmacProvider


@register_provider
class WorkOSProvider(HmacProvider):
    """WorkOS webhooks (events: Directory Sync, SSO, AuthKit, ...)."""

    name = "workos"
    default_tolerance = 180
    body_kind = "json"
    env_var = None
    signs_timestamp = True
    verification = "`WorkOS-Signature: t=<ms>, v1=<hex>` HMAC-SHA256 of `{t}.{body}` (secret)"
    handshake_summary = "none"
    dedup_summary = "`id` (event id)"
    preset: ClassVar[dict[str, Any]] = {
        "header": "WorkOS-Signature",
        "signature_key": "v1",
        "timestamp_key": "t",
        "pair_separator": ", ",
        "timestamp_format": "ms",
        "signed_content": "{timestamp}.{body}",
        "id_path": "id",
    }
    user_options = ()
