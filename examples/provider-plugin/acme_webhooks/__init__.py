"""Acme webhooks: ``Acme-Signature: t=<unix>,v1=<hex>``, HMAC-SHA256 of ``{t}.{body}``."""

from __future__ import annotations

from typing import Any, ClassVar

from gateway import Event, Webhook, transform
from gateway.providers.generic_hmac import HmacProvider


class AcmeProvider(HmacProvider):
    name = "acme"  # /webhooks/acme, ACME_WEBHOOK_SECRET, `provider = "acme"`
    body_kind = "json"
    env_var = None  # zero-config from ACME_WEBHOOK_SECRET
    verification = "`Acme-Signature: t=<unix>,v1=<hex>` HMAC-SHA256 of `{t}.{body}`"
    handshake_summary = "none"
    dedup_summary = "`Acme-Delivery`"
    signs_timestamp = True  # listed with its replay window; the preset checks the timestamp
    default_tolerance = 300  # Acme's documented window: 5 minutes either way
    preset: ClassVar[dict[str, Any]] = {
        "header": "Acme-Signature",
        "signature_key": "v1",
        "timestamp_key": "t",
        "signed_content": "{timestamp}.{body}",
        "id_header": "Acme-Delivery",
    }
    user_options = ()  # a source may set no options: the preset is the whole scheme

    @classmethod
    def secret_problem(cls, secret: str) -> str | None:
        if not secret.startswith("acme_whsec_"):
            return "is not an Acme signing secret (those start with acme_whsec_)"
        return super().secret_problem(secret)


@transform("acme")
def acme(webhook: Webhook) -> Event:
    payload = webhook.json  # {"id": "evt_..", "type": "invoice.paid", "created": 1700000000, ..}
    return Event(
        name=f"{webhook.prefix}/{payload['type']}",  # acme/invoice.paid
        id=f"acme-{payload['id']}",
        ts=payload["created"] * 1000,
        data=payload,
    )
