"""``square``: signatures checked with the ``squareup`` SDK's own
``square.utils.webhooks_helper.verify_signature``: its published vectors
(tests/integration/test_webhooks_helper.py in square/square-python-sdk) verify in the gateway, the
gateway's ``sign()`` output verifies in the SDK, and both refuse the same broken requests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest
from square.types.payment_created_event import PaymentCreatedEvent
from square.utils.webhooks_helper import verify_signature

from gateway.cli import main
from gateway.commands.send import read_sample
from gateway.providers import (
    MalformedSignature,
    MissingSignature,
    Provider,
    SignatureMismatch,
    get_provider,
)
from gateway.webhook import PayloadError, Webhook
from tests.provider_support import refused, zero_config_gateway
from transforms.square import square as square_transform

BODY = read_sample("square", "payment.created")
KEY = "Ibxx_5AKakO-3qeNVR61Dw"
URL = "https://hooks.example.com/webhooks/square"
NOW = 1_714_557_600
#: the SDK's published vector
VECTOR_BODY = (
    b'{"merchant_id":"MLEFBHHSJGVHD","type":"webhooks.test_notification","event_id":'
    b'"ac3ac95b-f97d-458c-a6e6-18981597e05f","created_at":"2022-07-13T20:30:59.037339943Z",'
    b'"data":{"type":"webhooks","id":"bc368e64-01aa-407e-b46e-3231809b1129"}}'
)
VECTOR_SIGNATURE = "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4="
VECTOR_URL = "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9"


def sdk_verifies(body: bytes, signature: str, key: str = KEY, url: str = URL) -> bool:
    return verify_signature(
        request_body=body.decode(), signature_header=signature, signature_key=key,
        notification_url=url,
    )  # fmt: skip


def provider(*keys: str, url: str = URL) -> Provider:
    return get_provider("square")(list(keys) or [KEY], 300, {"url": url})


def square_header(body: bytes, key: str = KEY, url: str = URL) -> dict[str, str]:
    mac = hmac.new(key.encode(), url.encode() + body, hashlib.sha256).digest()
    return {"x-square-hmacsha256-signature": base64.b64encode(mac).decode(),
            "content-type": "application/json"}  # fmt: skip


def test_the_sdks_published_vectors() -> None:
    assert sdk_verifies(VECTOR_BODY, VECTOR_SIGNATURE, url=VECTOR_URL)
    headers = {"x-square-hmacsha256-signature": VECTOR_SIGNATURE}
    provider(url=VECTOR_URL).verify(VECTOR_BODY, headers, now=NOW)
    other_url = provider(url=VECTOR_URL.replace("/679a", "/79a"))
    assert refused(other_url, VECTOR_BODY, headers, NOW) is SignatureMismatch
    escaped = b'{"data":{"type":"webhooks","id":">id<"}}'  # raw bytes, no HTML escaping
    signature = "Cxt7+aTi4rKgcA0bC4g9EHdVtLSDWdqccmL5MvihU4U="
    keyed = get_provider("square")(["signature-key"], 300, {"url": "https://webhook.site/webhooks"})
    keyed.verify(escaped, {"x-square-hmacsha256-signature": signature}, now=NOW)


def test_the_sdk_verifies_the_gateways_signature() -> None:
    ours = provider().sign(BODY)
    assert sdk_verifies(BODY, ours["x-square-hmacsha256-signature"])
    assert not sdk_verifies(BODY + b" ", ours["x-square-hmacsha256-signature"])
    assert not sdk_verifies(BODY, ours["x-square-hmacsha256-signature"], url=URL + "/")
    provider().verify(BODY, ours, now=NOW)
    event = PaymentCreatedEvent.model_validate(json.loads(BODY))  # the sample is Square's shape
    assert event.data is not None and event.data.type == "payment"


def test_broken_one_way_at_a_time() -> None:
    good = square_header(BODY)
    assert sdk_verifies(BODY, good["x-square-hmacsha256-signature"])
    p = provider()
    provider("rotated-out", KEY).verify(BODY, good, now=NOW)
    assert refused(p, BODY.replace(b"1500", b"1501", 1), good, NOW) is SignatureMismatch  # body
    assert refused(p, BODY, square_header(BODY, url=URL + "/"), NOW) is SignatureMismatch  # url
    forged = {"x-square-hmacsha256-signature": base64.b64encode(b"\0" * 32).decode()}
    assert refused(p, BODY, forged, NOW) is SignatureMismatch  # signature
    assert refused(p, BODY, square_header(BODY, key="another"), NOW) is SignatureMismatch  # key
    assert refused(p, BODY, {}, NOW) is MissingSignature
    sha1 = {"x-square-hmacsha256-signature": base64.b64encode(b"\0" * 20).decode()}
    assert refused(p, BODY, sha1, NOW) is MalformedSignature  # the legacy SHA-1 length
    assert not p.signs_timestamp and p.body_dedup()  # no timestamp: the body digest dedups


def test_needs_the_notification_url() -> None:
    with pytest.raises(ValueError, match=r"square option .*set url.*SQUARE_WEBHOOK_URL"):
        get_provider("square")([KEY], 300, {})
    assert get_provider("square").secret_problem(KEY) is None


def test_transform() -> None:
    webhook = Webhook(source="square", provider="square", body=BODY)
    event = square_transform(webhook)
    assert event.name == "square/payment.created"
    assert event.id == "square-6a8f5f28-54a1-4eb0-a98a-3111513fd4fc"
    assert event.ts == 1714557600123
    assert event.data["data"]["object"]["payment"]["status"] == "APPROVED"
    assert provider().delivery_id(webhook) == "6a8f5f28-54a1-4eb0-a98a-3111513fd4fc"
    with pytest.raises(PayloadError):
        provider().check_payload(Webhook(source="square", provider="square", body=b"[]"))


def test_zero_config_and_send_over_a_real_socket(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both variables enable the route; the URL signed is the configured public one, not the
    loopback address the requests really go to."""
    with zero_config_gateway(
        {"SQUARE_WEBHOOK_SECRET": KEY, "SQUARE_WEBHOOK_URL": URL}, tmp_path
    ) as (gw, client, env):
        first = client.post("/webhooks/square", content=BODY, headers=square_header(BODY))
        assert (first.status_code, first.json()["events"]) == (200, 1), first.text
        again = client.post("/webhooks/square", content=BODY, headers=square_header(BODY))
        assert again.json()["duplicates"] == 1
        assert client.post("/webhooks/square", content=BODY).status_code == 401
        wrong_url = square_header(BODY, url=gw.url + "/webhooks/square")
        assert client.post("/webhooks/square", content=BODY, headers=wrong_url).status_code == 401
        assert main(["send", "square", "--sample", "payment.created", "--url", gw.url], env) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[1] == "200 OK: accepted: 1 event(s) stored, 0 duplicate(s) skipped"
