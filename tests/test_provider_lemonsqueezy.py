"""``lemonsqueezy``: ``X-Signature`` computed as Lemon Squeezy's "Signing requests" guide shows
(https://docs.lemonsqueezy.com/help/webhooks/signing-requests: hex HMAC-SHA256 of the raw body);
its SDK (npm ``@lemonsqueezy/lemonsqueezy.js``) manages webhooks but verifies nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import gateway
from gateway.providers import (
    MalformedSignature,
    MissingSignature,
    SignatureMismatch,
    get_provider,
)
from gateway.webhook import Webhook
from tests.provider_support import refused as refused_at_now
from tests.provider_support import zero_config_gateway
from transforms.lemonsqueezy import lemonsqueezy as lemonsqueezy_transform

BODY = (
    Path(gateway.__file__).parent / "samples" / "lemonsqueezy" / "order_created.json"
).read_bytes()
SECRET = "ls-signing-5ecret"


def headers_for(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"x-signature": digest, "x-event-name": "order_created",
            "content-type": "application/json"}  # fmt: skip


def refused(body: bytes, headers: dict[str, str], secret: str = SECRET) -> type:
    return refused_at_now(get_provider("lemonsqueezy")([secret], 300, {}), body, headers)


def test_signature_broken_one_way_at_a_time() -> None:
    provider = get_provider("lemonsqueezy")(["old", SECRET], 300, {})
    provider.verify(BODY, headers_for(BODY))
    signer = get_provider("lemonsqueezy")([SECRET], 300, {})
    assert signer.sign(BODY) == {"x-signature": headers_for(BODY)["x-signature"]}
    assert signer.event_headers("order_created") == {"x-event-name": "order_created"}
    tampered = BODY.replace(b'"total": 1199', b'"total": 1', 1)
    assert refused(tampered, headers_for(BODY)) is SignatureMismatch  # body
    assert refused(BODY, {"x-signature": "0" * 64}) is SignatureMismatch  # signature
    assert refused(BODY, headers_for(BODY), "another") is SignatureMismatch  # key
    assert refused(BODY, {"x-signature": "sha256=abc"}) is MalformedSignature
    assert refused(BODY, {"x-event-name": "order_created"}) is MissingSignature


def test_transform() -> None:
    event = lemonsqueezy_transform(Webhook(source="ls", provider="lemonsqueezy", body=BODY))
    assert event.name == "lemonsqueezy/order.created"
    assert event.id == "lemonsqueezy-order_created-orders-1-2024-05-01T10:00:00.000000Z"
    assert event.ts == 1714557600000
    assert event.data == json.loads(BODY)
    payment = {"meta": {"event_name": "subscription_payment_success"},
               "data": {"type": "subscription-invoices", "id": "7",
                        "attributes": {"created_at": "2024-05-02T00:00:00.000000Z"}}}  # fmt: skip
    event = lemonsqueezy_transform(
        Webhook(source="ls", provider="lemonsqueezy", body=json.dumps(payment).encode())
    )
    assert (event.name, event.ts) == ("lemonsqueezy/subscription_payment.success", 1714608000000)
    assert event.id == "lemonsqueezy-subscription_payment_success-subscription-invoices-7-"  \
        "2024-05-02T00:00:00.000000Z"  # fmt: skip


def test_zero_config_over_a_real_socket(tmp_path: Path) -> None:
    with zero_config_gateway({"LEMONSQUEEZY_WEBHOOK_SECRET": SECRET}, tmp_path) as (_, client, _):
        ok = client.post("/webhooks/lemonsqueezy", content=BODY, headers=headers_for(BODY))
        assert (ok.status_code, ok.json()["events"]) == (200, 1)
        retry = client.post("/webhooks/lemonsqueezy", content=BODY, headers=headers_for(BODY))
        assert retry.json()["duplicates"] == 1
        wrong = client.post("/webhooks/lemonsqueezy", content=BODY, headers=headers_for(BODY, "x"))
        assert wrong.status_code == 401
