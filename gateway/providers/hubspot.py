"""HubSpot: ``X-HubSpot-Signature-v3``, built on the generic HMAC pieces.

As ``hubspot.utils.signature.Signature`` in ``hubspot-api-client`` (the tests sign with it):
base64 HMAC-SHA256, keyed with the app's **client secret**, of ``method + uri + body +
timestamp``, where the timestamp is ``X-HubSpot-Request-Timestamp`` in **milliseconds**. The SDK
refuses only timestamps older than 5 minutes; the gateway checks ``tolerance`` in both
directions. The ``uri`` is the public URL as configured in the app's webhook settings (option
``url``, zero-config ``HUBSPOT_WEBHOOK_URL``): behind a proxy the gateway cannot see it. HubSpot's
docs describe URL-decoding some characters of the URI; the SDK signs the URI as given, so the
configured URL is used exactly as written.

The body is a JSON array of events; v1/v2 signatures (no timestamp) are not accepted.
"""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.providers import register_provider
from gateway.providers.generic_hmac import HmacProvider


@register_provider
class HubSpotProvider(HmacProvider):
    """HubSpot app webhooks (v3 signatures)."""

    name = "hubspot"
    body_kind = "json"
    env_var = None
    signs_timestamp = True
    verification = (
        "`X-HubSpot-Signature-v3`: base64 HMAC-SHA256 of `{method}{url}{body}{timestamp_ms}`"
        " (client secret)"
    )
    handshake_summary = "none"
    dedup_summary = "each item's `eventId`"
    env_options: ClassVar[dict[str, str]] = {"url": "HUBSPOT_WEBHOOK_URL"}
    array_body = True
    preset: ClassVar[dict[str, Any]] = {
        "header": "X-HubSpot-Signature-v3",
        "encoding": "base64",
        "timestamp_header": "X-HubSpot-Request-Timestamp",
        "timestamp_format": "ms",
        "signed_content": "{method}{url}{body}{timestamp}",
    }
    user_options = ("url",)
