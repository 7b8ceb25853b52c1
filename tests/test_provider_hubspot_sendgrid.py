"""``hubspot`` (signed with hubspot-api-client) and ``sendgrid`` (SendGrid's published vector and
keys checked by the ``sendgrid`` package's EventWebhook)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hubspot.utils.signature import Signature
from sendgrid.helpers.eventwebhook import EventWebhook

import gateway
from gateway.providers import (
    Inbound,
    MalformedSignature,
    MissingSignature,
    Provider,
    SignatureMismatch,
    TimestampOutOfTolerance,
    get_provider,
)
from gateway.webhook import PayloadError, Webhook
from tests.provider_support import refused, zero_config_gateway
from transforms.hubspot import hubspot as hubspot_transform
from transforms.sendgrid import sendgrid as sendgrid_transform

SAMPLES = Path(gateway.__file__).parent / "samples"
NOW = 1_714_557_600
SECRET = "a1b2c3d4-client-secret"
URL = "https://hooks.example.com/webhooks/hubspot"
HUBSPOT = (SAMPLES / "hubspot" / "contact.creation.json").read_bytes()
SENDGRID = (SAMPLES / "sendgrid" / "email.delivered.json").read_bytes()


# -- HubSpot ------------------------------------------------------------------------------------


def hubspot_headers(
    body: bytes, ts_ms: int, secret: str = SECRET, url: str = URL
) -> dict[str, str]:
    signature = Signature.get_signature(secret, body.decode(), "v3", url, "POST", str(ts_ms))
    return {"x-hubspot-signature-v3": signature, "x-hubspot-request-timestamp": str(ts_ms)}


def hubspot_provider(*secrets: str) -> Provider:
    return get_provider("hubspot")(list(secrets) or [SECRET], 300, {"url": URL})


def test_hubspot_v3_signed_by_the_sdk_verifies_and_the_sdk_accepts_ours() -> None:
    ts = NOW * 1000 + 123
    headers = hubspot_headers(HUBSPOT, ts)
    hubspot_provider().verify_request(Inbound("POST", HUBSPOT, headers), now=NOW)
    hubspot_provider("rotated", SECRET).verify_request(Inbound("POST", HUBSPOT, headers), now=NOW)
    ours = hubspot_provider().sign(HUBSPOT, timestamp=NOW)
    assert (
        Signature.get_signature(
            SECRET, HUBSPOT.decode(), "v3", URL, "POST", ours["x-hubspot-request-timestamp"]
        )
        == ours["x-hubspot-signature-v3"]
    )


def test_hubspot_broken_one_way_at_a_time() -> None:
    ts = NOW * 1000
    good = hubspot_headers(HUBSPOT, ts)
    p = hubspot_provider()
    assert refused(p, HUBSPOT.replace(b"123", b"124", 1), good) is SignatureMismatch  # body
    later = {**good, "x-hubspot-request-timestamp": str(ts + 1)}
    assert refused(p, HUBSPOT, later) is SignatureMismatch  # timestamp
    assert refused(p, HUBSPOT, hubspot_headers(HUBSPOT, ts, url=URL + "/x")) is SignatureMismatch
    forged = {**good, "x-hubspot-signature-v3": base64.b64encode(b"\0" * 32).decode()}
    assert refused(p, HUBSPOT, forged) is SignatureMismatch  # signature
    assert refused(p, HUBSPOT, hubspot_headers(HUBSPOT, ts, "other")) is SignatureMismatch  # key
    for skew in (-301, 301):  # the window, both directions
        assert refused(p, HUBSPOT, good, now=NOW + skew) is TimestampOutOfTolerance
    assert refused(p, HUBSPOT, {}) is MissingSignature
    seconds = hubspot_headers(HUBSPOT, NOW)  # seconds where ms are due: far in the past
    assert refused(p, HUBSPOT, seconds) is TimestampOutOfTolerance
    get_request = Inbound("GET", HUBSPOT, good)
    with pytest.raises(SignatureMismatch):
        p.verify_request(get_request, now=NOW)  # the method is signed


def test_hubspot_one_event_per_item() -> None:
    webhook = Webhook(source="hubspot", provider="hubspot", body=HUBSPOT)
    hubspot_provider().check_payload(webhook)
    first, second = hubspot_transform(webhook)
    assert (first.name, first.id, first.ts) == (
        "hubspot/contact.creation",
        "hubspot-1790465934",
        1714557600123,
    )
    assert second.name == "hubspot/contact.property_change"
    with pytest.raises(PayloadError):
        hubspot_provider().check_payload(Webhook(source="h", provider="hubspot", body=b"{}"))


# -- SendGrid -----------------------------------------------------------------------------------

# The vector published with the sendgrid package (test/unit/test_eventwebhook.py).
SG_PUBLIC_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw"
    "+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
)
SG_SIGNATURE = (
    "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM"
    "+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM="
)
SG_TIMESTAMP = 1600112502
SG_PAYLOAD = (
    json.dumps(
        [
            {
                "email": "hello@world.com",
                "event": "dropped",
                "reason": "Bounced Address",
                "sg_event_id": "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
                "sg_message_id": "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18"
                "-5F5FC76C-9.0",
                "smtp-id": "<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>",
                "timestamp": 1600112492,
            }
        ],
        sort_keys=True,
        separators=(",", ":"),
    )
    + "\r\n"
).encode()


def sg_headers(signature: str, timestamp: int) -> dict[str, str]:
    return {"x-twilio-email-event-webhook-signature": signature,
            "x-twilio-email-event-webhook-timestamp": str(timestamp)}  # fmt: skip


def test_sendgrid_published_vector() -> None:
    assert EventWebhook(SG_PUBLIC_KEY).verify_signature(
        SG_PAYLOAD.decode(), SG_SIGNATURE, str(SG_TIMESTAMP)
    )
    provider = get_provider("sendgrid")([SG_PUBLIC_KEY], 300, {})
    provider.verify_request(
        Inbound("POST", SG_PAYLOAD, sg_headers(SG_SIGNATURE, SG_TIMESTAMP)), now=SG_TIMESTAMP
    )
    with pytest.raises(NotImplementedError):
        provider.sign(SG_PAYLOAD)


def signing_pair() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return private, base64.b64encode(der).decode()


def sg_sign(private: ec.EllipticCurvePrivateKey, body: bytes, timestamp: int) -> str:
    raw = private.sign(str(timestamp).encode() + body, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(raw).decode()


def test_sendgrid_broken_one_way_at_a_time() -> None:
    private, public = signing_pair()
    signature = sg_sign(private, SENDGRID, NOW)
    assert EventWebhook(public).verify_signature(SENDGRID.decode(), signature, str(NOW))
    p = get_provider("sendgrid")([public], 300, {})
    p.verify_request(Inbound("POST", SENDGRID, sg_headers(signature, NOW)), now=NOW)
    assert refused(p, SENDGRID + b" ", sg_headers(signature, NOW)) is SignatureMismatch  # body
    assert refused(p, SENDGRID, sg_headers(signature, NOW + 1)) is SignatureMismatch  # timestamp
    other = sg_sign(private, SENDGRID, NOW + 1)
    assert refused(p, SENDGRID, sg_headers(other, NOW)) is SignatureMismatch  # signature
    _, stranger = signing_pair()
    keyed = get_provider("sendgrid")([stranger], 300, {})
    assert refused(keyed, SENDGRID, sg_headers(signature, NOW)) is SignatureMismatch  # key
    for skew in (-301, 301):
        assert (
            refused(p, SENDGRID, sg_headers(signature, NOW), now=NOW + skew)
            is TimestampOutOfTolerance
        )
    assert refused(p, SENDGRID, sg_headers("%%%", NOW)) is MalformedSignature
    assert get_provider("sendgrid").secret_problem("not a key") is not None
    assert get_provider("sendgrid").secret_problem(public) is None


def test_sendgrid_one_event_per_item_over_a_real_socket(tmp_path: Path) -> None:
    private, public = signing_pair()
    with zero_config_gateway({"SENDGRID_WEBHOOK_SECRET": public}, tmp_path) as (_, client, _):
        now = int(time.time())
        headers = {
            **sg_headers(sg_sign(private, SENDGRID, now), now),
            "content-type": "application/json",
        }
        response = client.post("/webhooks/sendgrid", content=SENDGRID, headers=headers)
        assert (response.status_code, response.json()["events"]) == (200, 2)
        again = client.post("/webhooks/sendgrid", content=SENDGRID, headers=headers)
        assert again.json()["duplicates"] == 2
    processed, delivered = sendgrid_transform(
        Webhook(source="sendgrid", provider="sendgrid", body=SENDGRID)
    )
    assert (processed.name, processed.id, processed.ts) == (
        "sendgrid/email.processed", "sendgrid-rbtnWrG1DVDGGGFHFyun0A==", 1714557600000
    )  # fmt: skip
    assert delivered.name == "sendgrid/email.delivered"


def test_hubspot_needs_its_public_url() -> None:
    with pytest.raises(ValueError, match=r"hubspot option .*set url.*HUBSPOT_WEBHOOK_URL"):
        get_provider("hubspot")([SECRET], 300, {})
    with pytest.raises(ValueError, match="unknown option 'header'"):
        get_provider("hubspot")([SECRET], 300, {"url": URL, "header": "x"})
