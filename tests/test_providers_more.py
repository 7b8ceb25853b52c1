"""Standard Webhooks, GitHub, Shopify and the generic HMAC verifier.

Published vectors where the sender publishes one; the ``standardwebhooks`` package cross-checks
the Standard Webhooks verifier in both directions; every bad-input case; and property tests: random
requests raise only VerificationErrors and genuine ones pass.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import tomllib
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import standardwebhooks
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.app import build_sources
from gateway.config import (
    ENV_SOURCES,
    Config,
    ConfigError,
    ForwarderConfig,
    GatewayConfig,
    InngestConfig,
    SourceConfig,
)
from gateway.plugins import load_registry
from gateway.providers import (
    MalformedSignature,
    MissingSignature,
    Provider,
    SignatureMismatch,
    TimestampOutOfTolerance,
    VerificationError,
    get_provider,
    provider_names,
)
from gateway.providers import standard as standard_module
from gateway.webhook import PayloadError, Webhook
from tests.eventapi_standin import event_api
from tests.helpers import FIXTURES, fixture
from tests.server import run_gateway

NOW = 1_700_000_000
REFUSALS = {MissingSignature, MalformedSignature, SignatureMismatch, TimestampOutOfTolerance}
PROPERTY = settings(max_examples=150, deadline=None)

# Standard Webhooks' published vector (providers.md; the spec's libraries test it).
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TS = 1614265330
SW_BODY = b'{"test": 2432232314}'
SW_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
# GitHub's published vector ("Validating webhook deliveries").
GH_SECRET = "It's a Secret to Everybody"
GH_BODY = b"Hello, World!"
GH_SIG = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def make(name: str, *secrets: str, tolerance: int | None = 300, **options: Any) -> Provider:
    return get_provider(name)(list(secrets), tolerance, options)


def refused(
    provider: Provider, body: bytes, headers: dict[str, str], now: float = NOW
) -> VerificationError:
    """Assert the request is refused with a precise error that leaks no secret; return it."""
    with pytest.raises(VerificationError) as info:
        provider.verify(body, headers, now=now)
    error = info.value
    assert type(error) in REFUSALS
    assert error.status_code == 401 and error.reason
    for secret in provider.secrets:
        assert secret not in error.reason
    return error


def test_new_providers_registered_under_their_zero_config_names() -> None:
    assert {"standard", "github", "shopify", "hmac"} <= set(provider_names())
    registry = load_registry()
    for name in ("standard", "github", "shopify", "hmac"):
        assert name in registry  # the built-in transform of the same name
    for var in ("GITHUB_WEBHOOK_SECRET", "SHOPIFY_WEBHOOK_SECRET", "STANDARD_WEBHOOKS_SECRET"):
        _, provider = ENV_SOURCES[var]
        assert get_provider(provider).name == provider


# -- Standard Webhooks -------------------------------------------------------------------------


def sw_headers(msg_id: str, ts: int, signature: str, prefix: str = "webhook") -> dict[str, str]:
    return {
        f"{prefix}-id": msg_id,
        f"{prefix}-timestamp": str(ts),
        f"{prefix}-signature": signature,
    }


def lib_sign(secret: str, msg_id: str, ts: int, body: bytes) -> str:
    """A signature made by the ``standardwebhooks`` package itself."""
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return str(standardwebhooks.Webhook(secret).sign(msg_id, moment, body.decode()))


def test_standard_published_vector() -> None:
    headers = sw_headers(SW_ID, SW_TS, SW_SIG)
    make("standard", SW_SECRET).verify(SW_BODY, headers, now=SW_TS)
    assert standard_module.sign(SW_SECRET, SW_ID, SW_TS, SW_BODY) == SW_SIG
    assert lib_sign(SW_SECRET, SW_ID, SW_TS, SW_BODY) == SW_SIG


@pytest.mark.parametrize("name", ["clerk.user.created.json", "contact.created.json"])
def test_standard_agrees_with_the_standardwebhooks_package(name: str) -> None:
    body = fixture(f"more/standard/{name}")
    ts = int(time.time())  # the package reads the clock itself; its window is 5 minutes
    signature = lib_sign(SW_SECRET, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", ts, body)
    assert signature == standard_module.sign(SW_SECRET, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", ts, body)
    headers = sw_headers("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", ts, signature)
    library = standardwebhooks.Webhook(SW_SECRET)
    assert library.verify(body, headers) == json.loads(body)
    make("standard", SW_SECRET).verify(body, headers, now=ts)
    tampered = body.replace(b'"type"', b'"typo"', 1)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        library.verify(tampered, headers)
    assert isinstance(
        refused(make("standard", SW_SECRET), tampered, headers, ts), SignatureMismatch
    )
    other_id = {**headers, "webhook-id": "msg_other"}
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        library.verify(body, other_id)
    assert isinstance(refused(make("standard", SW_SECRET), body, other_id, ts), SignatureMismatch)


def test_standard_reads_svix_headers_as_clerk_sends_them() -> None:
    body = fixture("more/standard/clerk.user.created.json")
    headers = sw_headers("msg_clerk_1", NOW, lib_sign(SW_SECRET, "msg_clerk_1", NOW, body), "svix")
    provider = make("standard", SW_SECRET)
    provider.verify(body, headers, now=NOW)
    webhook = Webhook(source="clerk", provider="standard", body=body, headers=headers)
    assert provider.delivery_id(webhook) == "msg_clerk_1"


def test_standard_any_signature_any_secret_unknown_versions_ignored() -> None:
    old, new = "whsec_" + base64.b64encode(b"o" * 24).decode(), SW_SECRET
    sig_old = lib_sign(old, SW_ID, SW_TS, SW_BODY)
    for header in (
        f"{sig_old} {SW_SIG}",
        f"v2,{SW_SIG[3:]} v1,AAAA {SW_SIG}",
        f"{sig_old}, {SW_SIG}",  # a repeated header, joined by the receiver
        f"v1,{SW_SIG[3:].rstrip('=')}",  # unpadded base64
    ):
        make("standard", new).verify(SW_BODY, sw_headers(SW_ID, SW_TS, header), now=SW_TS)
    make("standard", old, new).verify(SW_BODY, sw_headers(SW_ID, SW_TS, sig_old), now=SW_TS)
    make("standard", "whsec_" + base64.b64encode(b"x" * 24).decode(), new).verify(
        SW_BODY, sw_headers(SW_ID, SW_TS, SW_SIG), now=SW_TS
    )
    # a secret without its whsec_ prefix is the same key
    make("standard", new.removeprefix("whsec_")).verify(
        SW_BODY, sw_headers(SW_ID, SW_TS, SW_SIG), now=SW_TS
    )


def ed25519_pair() -> tuple[Ed25519PrivateKey, str]:
    private = Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return private, "whpk_" + base64.b64encode(raw).decode()


def v1a(private: Ed25519PrivateKey, msg_id: str, ts: int, body: bytes) -> str:
    signature = private.sign(f"{msg_id}.{ts}.".encode() + body)
    return "v1a," + base64.b64encode(signature).decode()


def test_standard_asymmetric_v1a() -> None:
    private, public = ed25519_pair()
    other_private, other_public = ed25519_pair()
    body = fixture("more/standard/clerk.user.created.json")
    header = v1a(private, "msg_a", NOW, body)
    make("standard", public).verify(body, sw_headers("msg_a", NOW, header), now=NOW)
    # mixed: a symmetric secret and a public key; an HMAC entry beside the ed25519 one
    both = f"{lib_sign(SW_SECRET, 'msg_a', NOW, body)} {header}"
    make("standard", SW_SECRET, other_public).verify(body, sw_headers("msg_a", NOW, both), now=NOW)
    make("standard", other_public, public).verify(body, sw_headers("msg_a", NOW, both), now=NOW)
    for bad in (
        make("standard", other_public),  # signed by another key
        make("standard", SW_SECRET),  # no key can check a v1a entry
    ):
        error = refused(bad, body, sw_headers("msg_a", NOW, header))
        assert isinstance(error, SignatureMismatch)
    error = refused(make("standard", public), body + b" ", sw_headers("msg_a", NOW, header))
    assert isinstance(error, SignatureMismatch)
    error = refused(make("standard", public), body, sw_headers("msg_b", NOW, header))
    assert isinstance(error, SignatureMismatch)
    # a v1a signature presented as v1 is not an HMAC
    as_v1 = "v1," + header.removeprefix("v1a,")
    error = refused(make("standard", public, SW_SECRET), body, sw_headers("msg_a", NOW, as_v1))
    assert isinstance(error, SignatureMismatch)
    assert other_private is not private


@pytest.mark.parametrize(
    ("secret", "match"),
    [
        ("whsk_" + base64.b64encode(b"k" * 32).decode(), "whpk_ public key instead"),
        ("whpk_" + base64.b64encode(b"short").decode(), "not a valid whpk_"),
        ("whpk_not base64!", "not a valid whpk_"),
        ("whsec_not base64!", "not whsec_ followed by base64"),
        ("whsec_", "is empty"),
    ],
)
def test_standard_bad_secrets_fail_at_construction(secret: str, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        make("standard", SW_SECRET, secret)
    assert "secret #2" in str(info.value)
    key = secret.split("_", 1)[1]
    assert not key or key not in str(info.value)


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, MissingSignature),
        (sw_headers(SW_ID, SW_TS, ""), MissingSignature),
        ({"webhook-timestamp": str(SW_TS), "webhook-signature": SW_SIG}, MissingSignature),
        ({"webhook-id": SW_ID, "webhook-signature": SW_SIG}, MissingSignature),
        (
            {"webhook-id": SW_ID, "svix-timestamp": str(SW_TS), "webhook-signature": SW_SIG},
            MissingSignature,
        ),
        (sw_headers(SW_ID, SW_TS, SW_SIG) | {"webhook-timestamp": "abc"}, MalformedSignature),
        (
            sw_headers(SW_ID, SW_TS, SW_SIG) | {"webhook-timestamp": "1614265330.5"},
            MalformedSignature,
        ),
        (
            sw_headers(SW_ID, SW_TS, SW_SIG) | {"webhook-timestamp": "١٦١٤٢٦٥٣٣٠"},
            MalformedSignature,
        ),
        (sw_headers(SW_ID, SW_TS, SW_SIG) | {"webhook-timestamp": "9" * 5000}, MalformedSignature),
        (sw_headers(SW_ID, SW_TS, "garbage"), MalformedSignature),
        (sw_headers(SW_ID, SW_TS, "v1"), MalformedSignature),
        (sw_headers(SW_ID, SW_TS, "v1,!!!not-base64"), MalformedSignature),
        (sw_headers(SW_ID, SW_TS, "v2," + SW_SIG[3:]), MalformedSignature),
        (
            sw_headers(SW_ID, SW_TS, "v1," + base64.b64encode(b"\0" * 32).decode()),
            SignatureMismatch,
        ),
        (sw_headers("msg_\udc80", SW_TS, SW_SIG), MalformedSignature),
    ],
)
def test_standard_bad_headers(headers: dict[str, str], error: type[VerificationError]) -> None:
    raised = refused(make("standard", SW_SECRET), SW_BODY, headers, SW_TS)
    assert type(raised) is error
    assert SW_SIG[3:] not in raised.reason  # never the expected signature


def test_standard_wrong_secret_and_tampered_body() -> None:
    headers = sw_headers(SW_ID, SW_TS, SW_SIG)
    wrong = "whsec_" + base64.b64encode(b"w" * 24).decode()
    assert isinstance(refused(make("standard", wrong), SW_BODY, headers, SW_TS), SignatureMismatch)
    tampered = b'{"test": 2432232315}'
    assert isinstance(
        refused(make("standard", SW_SECRET), tampered, headers, SW_TS), SignatureMismatch
    )


def test_standard_timestamp_window_both_directions() -> None:
    headers = sw_headers(SW_ID, SW_TS, SW_SIG)
    provider = make("standard", SW_SECRET)
    provider.verify(SW_BODY, headers, now=SW_TS + 300)
    provider.verify(SW_BODY, headers, now=SW_TS - 300)
    for now in (SW_TS + 301, SW_TS - 301):
        assert isinstance(refused(provider, SW_BODY, headers, now), TimestampOutOfTolerance)
    make("standard", SW_SECRET, tolerance=0).verify(SW_BODY, headers, now=SW_TS + 10**6)
    make("standard", SW_SECRET, tolerance=None).verify(SW_BODY, headers, now=SW_TS - 10**6)
    # a forgery with a stale timestamp learns only "mismatch"
    forged = sw_headers(SW_ID, SW_TS, "v1," + base64.b64encode(b"\1" * 32).decode())
    assert isinstance(refused(provider, SW_BODY, forged, SW_TS + 10**6), SignatureMismatch)


def test_standard_payload_and_delivery_id() -> None:
    provider = make("standard", SW_SECRET)
    webhook = Webhook(
        source="standard",
        provider="standard",
        body=SW_BODY,
        headers=sw_headers(SW_ID, SW_TS, SW_SIG),
    )
    provider.check_payload(webhook)
    assert provider.delivery_id(webhook) == SW_ID
    assert provider.handshake(webhook) is None
    assert provider.delivery_id(Webhook(source="s", provider="standard", body=b"{}")) is None
    for body in (b"[1]", b"not json"):
        with pytest.raises(PayloadError):
            provider.check_payload(Webhook(source="s", provider="standard", body=body))


# -- GitHub ------------------------------------------------------------------------------------


def gh_sign(secret: str, body: bytes) -> str:
    """``X-Hub-Signature-256`` computed as GitHub's docs describe, independently of the code."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def gh_headers(body: bytes, secret: str, event: str, delivery: str) -> dict[str, str]:
    return {
        "x-hub-signature-256": gh_sign(secret, body),
        "x-github-event": event,
        "x-github-delivery": delivery,
        "x-github-hook-id": "109948940",
        "content-type": "application/json",
    }


def test_github_published_vector() -> None:
    make("github", GH_SECRET).verify(GH_BODY, {"x-hub-signature-256": GH_SIG})
    make("github", GH_SECRET).verify(
        GH_BODY, {"x-hub-signature-256": "sha256=" + GH_SIG[7:].upper()}
    )
    assert gh_sign(GH_SECRET, GH_BODY) == GH_SIG


def test_github_json_and_form_bodies_rotation_and_repeats() -> None:
    payload = fixture("more/github/push.json")
    form = urlencode({"payload": payload.decode()}).encode()
    for body in (payload, form):
        headers = gh_headers(body, "new", "push", "d-1")
        make("github", "old", "new").verify(body, headers)
        webhook = Webhook(source="github", provider="github", body=body, headers=headers)
        provider = make("github", "new")
        provider.check_payload(webhook)
        assert provider.delivery_id(webhook) == "d-1"
        assert provider.handshake(webhook) is None
    joined = f"{gh_sign('old', payload)}, {gh_sign('new', payload)}"
    make("github", "new").verify(payload, {"x-hub-signature-256": joined})


def test_github_ping_is_a_handshake() -> None:
    body = fixture("more/github/ping.json")
    headers = gh_headers(body, "s", "ping", "d-ping")
    provider = make("github", "s")
    provider.verify(body, headers)
    webhook = Webhook(source="github", provider="github", body=body, headers=headers)
    provider.check_payload(webhook)
    reply = provider.handshake(webhook)
    assert reply is not None and reply.status == 200 and reply.body == {"ok": True}


@pytest.mark.parametrize(
    ("header", "error"),
    [
        (None, MissingSignature),
        ("", MissingSignature),
        ("757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", MalformedSignature),
        ("sha1=" + "0" * 40, MalformedSignature),
        ("sha256=" + "0" * 63, MalformedSignature),
        ("sha256=" + "z" * 64, MalformedSignature),
        ("sha256=" + "é" * 64, MalformedSignature),
        (GH_SIG + ", garbage", MalformedSignature),
        ("sha256=" + "0" * 64, SignatureMismatch),
    ],
)
def test_github_bad_headers(header: str | None, error: type[VerificationError]) -> None:
    headers = {} if header is None else {"x-hub-signature-256": header}
    assert type(refused(make("github", GH_SECRET), GH_BODY, headers)) is error


def test_github_legacy_sha1_header_alone_is_not_enough() -> None:
    sha1 = "sha1=" + hmac.new(GH_SECRET.encode(), GH_BODY, hashlib.sha1).hexdigest()
    error = refused(make("github", GH_SECRET), GH_BODY, {"x-hub-signature": sha1})
    assert isinstance(error, MissingSignature)


def test_github_wrong_secret_and_tampered_body() -> None:
    body = fixture("more/github/pull_request.opened.json")
    headers = gh_headers(body, "right", "pull_request", "d-2")
    error = refused(make("github", "wrong"), body, headers)
    assert isinstance(error, SignatureMismatch)
    assert gh_sign("wrong", body)[7:] not in error.reason
    assert isinstance(refused(make("github", "right"), body + b"\n", headers), SignatureMismatch)


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b'{"zen": "x"}', {}),  # no X-GitHub-Event
        (b"[1, 2]", {"x-github-event": "push"}),
        (b"{not json", {"x-github-event": "push"}),
        (b"foo=bar", {"x-github-event": "push"}),
        (b"payload=%7Bnot-json", {"x-github-event": "push"}),
        (b"payload=%5B1%5D", {"x-github-event": "push"}),
        (b"\xff\xfe=1", {"x-github-event": "push"}),
    ],
)
def test_github_invalid_payloads(body: bytes, headers: dict[str, str]) -> None:
    webhook = Webhook(source="github", provider="github", body=body, headers=headers)
    with pytest.raises(PayloadError):
        make("github", "s").check_payload(webhook)


# -- Shopify -----------------------------------------------------------------------------------


def shopify_sign(secret: str, body: bytes) -> str:
    """``X-Shopify-Hmac-Sha256`` as Shopify's docs compute it, independently of the code."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def shopify_headers(body: bytes, secret: str, topic: str = "orders/create") -> dict[str, str]:
    return {
        "x-shopify-hmac-sha256": shopify_sign(secret, body),
        "x-shopify-topic": topic,
        "x-shopify-shop-domain": "jsmith.myshopify.com",
        "x-shopify-api-version": "2024-07",
        "x-shopify-webhook-id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "x-shopify-event-id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
        "x-shopify-triggered-at": "2024-07-17T14:55:13.123456789Z",
    }


def test_shopify_signature_and_rotation() -> None:
    body = fixture("more/shopify/orders.create.json")
    headers = shopify_headers(body, "shpss_client_secret")
    make("shopify", "shpss_client_secret").verify(body, headers)
    make("shopify", "shpss_old", "shpss_client_secret").verify(body, headers)
    from gateway.providers.shopify import sign

    assert sign("shpss_client_secret", body) == headers["x-shopify-hmac-sha256"]
    joined = f"{shopify_sign('shpss_old', body)}, {headers['x-shopify-hmac-sha256']}"
    make("shopify", "shpss_client_secret").verify(body, {"x-shopify-hmac-sha256": joined})


@pytest.mark.parametrize(
    ("header", "error"),
    [
        (None, MissingSignature),
        ("", MissingSignature),
        ("not base64!", MalformedSignature),
        ("é" * 44, MalformedSignature),
        (base64.b64encode(b"\0" * 20).decode(), MalformedSignature),  # a SHA-1's length
        (hashlib.sha256(b"x").hexdigest(), MalformedSignature),  # hex, not base64
        (base64.b64encode(b"\0" * 32).decode(), SignatureMismatch),
    ],
)
def test_shopify_bad_headers(header: str | None, error: type[VerificationError]) -> None:
    headers = {} if header is None else {"x-shopify-hmac-sha256": header}
    assert type(refused(make("shopify", "shpss_test"), b"{}", headers)) is error


def test_shopify_wrong_secret_and_tampered_body() -> None:
    body = fixture("more/shopify/orders.create.json")
    headers = shopify_headers(body, "right")
    error = refused(make("shopify", "wrong"), body, headers)
    assert isinstance(error, SignatureMismatch)
    assert shopify_sign("wrong", body) not in error.reason
    tampered = body.replace(b'"403.00"', b'"0.00"')
    assert tampered != body
    assert isinstance(refused(make("shopify", "right"), tampered, headers), SignatureMismatch)


def test_shopify_payload_and_delivery_ids() -> None:
    body = fixture("more/shopify/orders.create.json")
    provider = make("shopify", "s")
    headers = shopify_headers(body, "s")
    webhook = Webhook(source="shopify", provider="shopify", body=body, headers=headers)
    provider.check_payload(webhook)
    assert provider.delivery_id(webhook) == "98880550-7158-44d4-b7cd-2c97c8a091b5"
    del headers["x-shopify-event-id"]
    fallback = Webhook(source="shopify", provider="shopify", body=body, headers=headers)
    assert provider.delivery_id(fallback) == "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
    no_topic = Webhook(source="shopify", provider="shopify", body=body, headers={})
    with pytest.raises(PayloadError, match="X-Shopify-Topic"):
        provider.check_payload(no_topic)
    array = Webhook(source="s", provider="shopify", body=b"[]", headers={"x-shopify-topic": "a/b"})
    with pytest.raises(PayloadError):
        provider.check_payload(array)


def test_shopify_newer_header_set_verifies_names_and_dedups() -> None:
    """Shopify's ``shopify-*`` headers (no ``X-`` prefix) work alone, as the ``X-Shopify-*``."""
    body = fixture("more/shopify/orders.create.json")
    legacy = shopify_headers(body, "shpss_key")
    headers = {k.removeprefix("x-"): v for k, v in legacy.items()}
    assert "shopify-hmac-sha256" in headers and "x-shopify-hmac-sha256" not in headers
    provider = make("shopify", "shpss_key")
    provider.verify(body, headers, now=NOW)
    webhook = Webhook(source="shopify", provider="shopify", body=body, headers=headers)
    provider.check_payload(webhook)
    assert provider.delivery_id(webhook) == legacy["x-shopify-event-id"]
    registry = load_registry()
    [event] = [registry.get("shopify")(webhook)]
    assert event.name == "shopify/orders.create"
    assert event.id == "shopify-" + legacy["x-shopify-event-id"]
    headers["shopify-hmac-sha256"] = shopify_headers(body + b" ", "shpss_key")[
        "x-shopify-hmac-sha256"
    ]
    assert isinstance(refused(provider, body, headers), SignatureMismatch)


# -- Generic HMAC ------------------------------------------------------------------------------

LINEAR = {
    "header": "Linear-Signature",
    "name_template": "linear/{type:lower}.{action}",
    "id_header": "Linear-Delivery",
    "ts_path": "webhookTimestamp",
}
TYPEFORM = {
    "header": "Typeform-Signature",
    "encoding": "base64",
    "prefix": "sha256=",
    "name_template": "typeform/{event_type}",
    "id_path": "event_id",
    "ts_path": "form_response.submitted_at",
}
PAGERDUTY = {
    "header": "X-PagerDuty-Signature",
    "prefix": "v1=",
    "separator": ",",
    "name_template": "pagerduty/{event.event_type}",
    "id_path": "event.id",
    "ts_path": "event.occurred_at",
}
LEMONSQUEEZY = {
    "header": "X-Signature",
    "name_template": "lemonsqueezy/{header:X-Event-Name}",
    "id_path": "meta.webhook_id",
}
PYANNOTE = {
    "header": "X-Signature",
    "encoding": "base64",
    "timestamp_header": "X-Request-Timestamp",
    "signed_content": "v0:{timestamp}:{body}",
    "name_template": "pyannote/job.{status:lower}",
    "id_path": "jobId",
}


def mac(secret: str, data: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(secret.encode(), data, getattr(hashlib, algorithm)).digest()


def linear_headers(body: bytes, secret: str) -> dict[str, str]:
    # Linear: hex HMAC-SHA256 of the raw body in Linear-Signature.
    return {
        "linear-signature": mac(secret, body).hex(),
        "linear-delivery": "234d1a4e-b617-4388-90fe-adc3633d6b72",
        "linear-event": "Issue",
    }


def typeform_headers(body: bytes, secret: str) -> dict[str, str]:
    # Typeform: "sha256=" + base64 HMAC-SHA256 of the raw body.
    return {"typeform-signature": "sha256=" + base64.b64encode(mac(secret, body)).decode()}


def pagerduty_headers(body: bytes, *secrets: str) -> dict[str, str]:
    # PagerDuty v3: "v1=<hex>" per signing secret, comma-separated while a secret rotates.
    return {"x-pagerduty-signature": ",".join("v1=" + mac(s, body).hex() for s in secrets)}


def lemonsqueezy_headers(body: bytes, secret: str) -> dict[str, str]:
    return {"x-signature": mac(secret, body).hex(), "x-event-name": "order_created"}


def pyannote_headers(body: bytes, secret: str, ts: int) -> dict[str, str]:
    signed = f"v0:{ts}:".encode() + body
    return {
        "x-signature": base64.b64encode(mac(secret, signed)).decode(),
        "x-request-timestamp": str(ts),
    }


EXAMPLES = [
    ("linear.issue.create.json", LINEAR, linear_headers),
    ("typeform.form_response.json", TYPEFORM, typeform_headers),
    ("pagerduty.incident.triggered.json", PAGERDUTY, pagerduty_headers),
    ("lemonsqueezy.order_created.json", LEMONSQUEEZY, lemonsqueezy_headers),
    ("pyannote.job.succeeded.json", PYANNOTE, lambda b, s: pyannote_headers(b, s, NOW)),
]


@pytest.mark.parametrize(("name", "options", "sign"), EXAMPLES)
def test_hmac_real_world_schemes(name: str, options: dict[str, str], sign: Any) -> None:
    body = fixture(f"more/hmac/{name}")
    headers = sign(body, "whk_secret_1")
    provider = make("hmac", "whk_secret_1", **options)
    provider.verify(body, headers, now=NOW)
    make("hmac", "whk_old", "whk_secret_1", **options).verify(body, headers, now=NOW)
    provider.check_payload(Webhook(source="s", provider="hmac", body=body, headers=headers))
    assert isinstance(
        refused(make("hmac", "whk_wrong", **options), body, headers), SignatureMismatch
    )
    tampered = body.replace(b"}", b" }", 1)
    assert isinstance(refused(provider, tampered, headers), SignatureMismatch)


def test_hmac_several_signatures_in_one_header() -> None:
    body = fixture("more/hmac/pagerduty.incident.triggered.json")
    headers = pagerduty_headers(body, "pd_old", "pd_new")
    make("hmac", "pd_new", **PAGERDUTY).verify(body, headers)
    make("hmac", "pd_old", **PAGERDUTY).verify(body, headers)
    assert isinstance(refused(make("hmac", "pd_x", **PAGERDUTY), body, headers), SignatureMismatch)
    # items of another version are skipped; only v1= items are candidates
    extra = {"x-pagerduty-signature": "v2=abc, " + headers["x-pagerduty-signature"]}
    make("hmac", "pd_new", **PAGERDUTY).verify(body, extra)


def test_hmac_defaults_sha1_sha512_and_hex_case() -> None:
    body = b'{"type": "thing.happened"}'
    make("hmac", "k", header="X-Sig").verify(body, {"x-sig": mac("k", body).hex().upper()})
    make("hmac", "k", header="X-Sig", algorithm="sha1").verify(
        body, {"x-sig": mac("k", body, "sha1").hex()}
    )
    make("hmac", "k", header="X-HCP-Radar-Signature", algorithm="sha512", prefix="sha512=").verify(
        body, {"x-hcp-radar-signature": "sha512=" + mac("k", body, "sha512").hex()}
    )
    # a sha1 digest where sha256 is configured is the wrong length: malformed, not a mismatch
    error = refused(
        make("hmac", "k", header="X-Sig"), body, {"x-sig": mac("k", body, "sha1").hex()}
    )
    assert isinstance(error, MalformedSignature)


def test_hmac_signed_headers() -> None:
    options = {
        "header": "X-Sig",
        "signed_content": "{header:X-Message-Id}{header:X-Sent}{body}",
    }
    body = b'{"type": "a"}'
    headers = {"x-message-id": "m-1", "x-sent": "2024-07-17T14:55:13Z"}
    headers["x-sig"] = mac("k", b"m-12024-07-17T14:55:13Z" + body).hex()
    provider = make("hmac", "k", **options)
    provider.verify(body, headers)
    assert isinstance(
        refused(provider, body, {**headers, "x-message-id": "m-2"}), SignatureMismatch
    )
    missing = {k: v for k, v in headers.items() if k != "x-sent"}
    assert isinstance(refused(provider, body, missing), MissingSignature)
    assert isinstance(refused(provider, body, {**headers, "x-sent": "€"}), MalformedSignature)
    # Latin-1 header bytes (as the receiver decodes them) are signed as those bytes
    latin = {**headers, "x-sent": "caf\xe9"}
    latin["x-sig"] = mac("k", b"m-1caf\xe9" + body).hex()
    provider.verify(body, latin)


def test_hmac_timestamp_window_both_directions() -> None:
    body = fixture("more/hmac/pyannote.job.succeeded.json")
    headers = pyannote_headers(body, "k", NOW)
    provider = make("hmac", "k", **PYANNOTE)
    provider.verify(body, headers, now=NOW + 300)
    provider.verify(body, headers, now=NOW - 300)
    for now in (NOW + 301, NOW - 301):
        assert isinstance(refused(provider, body, headers, now), TimestampOutOfTolerance)
    make("hmac", "k", tolerance=0, **PYANNOTE).verify(body, headers, now=NOW + 10**6)
    # the timestamp is signed: changing it breaks the signature
    moved = {**headers, "x-request-timestamp": str(NOW + 1)}
    assert isinstance(refused(provider, body, moved), SignatureMismatch)


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, MissingSignature),
        ({"x-signature": ""}, MissingSignature),
        ({"x-signature": "AAAA"}, MalformedSignature),  # the signature's shape comes first
        ({"x-signature": "not base64!", "x-request-timestamp": str(NOW)}, MalformedSignature),
        ({"x-signature": base64.b64encode(b"\0" * 32).decode()}, MissingSignature),
        (
            {"x-signature": base64.b64encode(b"\0" * 32).decode(), "x-request-timestamp": "x"},
            MalformedSignature,
        ),
        (
            {"x-signature": base64.b64encode(b"\0" * 32).decode(), "x-request-timestamp": "9" * 99},
            MalformedSignature,
        ),
        (
            {"x-signature": base64.b64encode(b"\0" * 32).decode(), "x-request-timestamp": str(NOW)},
            SignatureMismatch,
        ),
    ],
)
def test_hmac_bad_headers(headers: dict[str, str], error: type[VerificationError]) -> None:
    assert type(refused(make("hmac", "k", **PYANNOTE), b"{}", headers)) is error


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("0" * 64, MalformedSignature),  # prefix missing
        ("sha256=" + "0" * 64, MalformedSignature),  # hex where base64 is configured
        ("sha256=" + base64.b64encode(b"\0" * 16).decode(), MalformedSignature),
        ("sha256=" + base64.b64encode(b"\0" * 32).decode(), SignatureMismatch),
    ],
)
def test_hmac_prefix_and_encoding(value: str, error: type[VerificationError]) -> None:
    headers = {"typeform-signature": value}
    assert type(refused(make("hmac", "k", **TYPEFORM), b"{}", headers)) is error


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({}, "header"),
        ({"header": ""}, "header"),
        ({"header": "X Sig"}, "header"),
        ({"header": 5}, "header"),
        ({"header": "X-Sig", "algorithm": "md5"}, "algorithm"),
        ({"header": "X-Sig", "encoding": "base32"}, "encoding"),
        ({"header": "X-Sig", "prefix": 5}, "prefix"),
        ({"header": "X-Sig", "separator": ""}, "separator"),
        ({"header": "X-Sig", "prefix": "a,b="}, "prefix"),
        ({"header": "X-Sig", "signed_content": "{timestamp}.{body}"}, "signed_content"),
        ({"header": "X-Sig", "signed_content": "{body}{body}"}, "signed_content"),
        ({"header": "X-Sig", "signed_content": "no body"}, "signed_content"),
        ({"header": "X-Sig", "signed_content": "{body"}, "signed_content"),
        ({"header": "X-Sig", "signed_content": "{type}.{body}"}, "signed_content"),
        ({"header": "X-Sig", "signed_content": "{body!r}"}, "signed_content"),
        ({"header": "X-Sig", "signed_content": "{header}{body}"}, "signed_content"),
        ({"header": "X-Sig", "signed_content": ""}, "signed_content"),
        ({"header": "X-Sig", "timestamp_header": "X-Ts"}, "timestamp_header"),
        (
            {"header": "X-Sig", "timestamp_header": "X Ts", "signed_content": "{timestamp}{body}"},
            "timestamp_header",
        ),
        ({"header": "X-Sig", "name_template": ""}, "name_template"),
        ({"header": "X-Sig", "name_template": "acme/{}"}, "name_template"),
        ({"header": "X-Sig", "name_template": "acme/{a..b}"}, "name_template"),
        ({"header": "X-Sig", "name_template": "acme/{type:upper}"}, "name_template"),
        ({"header": "X-Sig", "name_template": "acme/{type"}, "name_template"),
        ({"header": "X-Sig", "name_template": "acme/{body}"}, None),  # a JSON path named body
        ({"header": "X-Sig", "id_header": "A", "id_path": "id"}, "id_header"),
        ({"header": "X-Sig", "id_path": "a..b"}, "id_path"),
        ({"header": "X-Sig", "id_header": "bad header"}, "id_header"),
        ({"header": "X-Sig", "ts_path": ""}, "ts_path"),
        ({"header": "X-Sig", "format": "xml"}, "format"),
        ({"header": "X-Sig", "hedaer": "X-Sig"}, "hedaer"),
    ],
)
def test_hmac_bad_options_fail_at_construction(options: dict[str, Any], option: str | None) -> None:
    if option is None:
        make("hmac", "k", **options)
        return
    with pytest.raises(ValueError, match=f"hmac.*{option}"):
        make("hmac", "k", **options)


def test_hmac_bad_options_stop_the_gateway_naming_the_source() -> None:
    config = Config(
        sources=[
            SourceConfig(
                name="acme",
                provider="hmac",
                secrets=["inline:k"],
                options={"header": "X-Acme-Signature", "algorithm": "md5"},
            )
        ]
    )
    with pytest.raises(ConfigError, match=r"sources\[0\] \(acme\).*algorithm"):
        build_sources(config, load_registry(), {})


def test_documented_configurations_are_valid() -> None:
    """Every TOML example in docs/providers-more.md validates and builds its provider."""
    doc = (FIXTURES.parent.parent / "docs" / "providers-more.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", doc, re.DOTALL)
    prefixes = {}
    for block in blocks:
        config = Config.model_validate(tomllib.loads(block))
        for source in config.sources:
            secret = SW_SECRET if source.provider == "standard" else "k"
            get_provider(source.provider)([secret], source.tolerance, source.options)
            prefixes[source.name] = source.event_prefix
    names = {"standard", "billing", "linear", "typeform", "pagerduty", "lemonsqueezy", "pyannote"}
    assert names <= set(prefixes)
    assert (prefixes["standard"], prefixes["billing"]) == ("clerk", "billing")
    for name, options, _ in EXAMPLES:  # the tests' options are the documented ones
        documented = next(s for b in blocks for s in Config.model_validate(tomllib.loads(b)).sources
                          if s.name == name.split(".")[0])  # fmt: skip
        assert documented.options == options


def test_hmac_delivery_ids_and_payload_formats() -> None:
    body = fixture("more/hmac/typeform.form_response.json")
    webhook = Webhook(source="typeform", provider="hmac", body=body)
    assert make("hmac", "k", **TYPEFORM).delivery_id(webhook) == "01EK4R5PFZZP6C8H14RTP4YW6C"
    assert make("hmac", "k", header="X-Sig", id_path="nope").delivery_id(webhook) is None
    assert make("hmac", "k", header="X-Sig").delivery_id(webhook) is None
    indexed = make("hmac", "k", header="X-Sig", id_path="form_response.answers.0.field.id")
    assert indexed.delivery_id(webhook) == "M8JLOd0nIQPU"
    linear = Webhook(source="l", provider="hmac", body=b"{}", headers={"Linear-Delivery": "d-9"})
    assert make("hmac", "k", **LINEAR).delivery_id(linear) == "d-9"
    form = make("hmac", "k", header="X-Sig", format="form", id_path="MessageSid")
    form_hook = Webhook(source="f", provider="hmac", body=b"MessageSid=SM1&Body=hi")
    form.check_payload(form_hook)
    assert form.delivery_id(form_hook) == "SM1"
    with pytest.raises(PayloadError):
        make("hmac", "k", header="X-Sig").check_payload(form_hook)  # json by default
    with pytest.raises(PayloadError):
        form.check_payload(Webhook(source="f", provider="hmac", body=b"\xff=1"))


# -- Properties --------------------------------------------------------------------------------

SECRETS = {
    "standard": [SW_SECRET, "whsec_" + base64.b64encode(b"property-two-key-24bytes").decode()],
    "github": ["gh_property_one", "gh_property_two"],
    "shopify": ["shpss_property_one", "shpss_property_two"],
    "hmac": ["hmac_property_one", "hmac_property_two"],
    "hmac-pagerduty": ["pd_property_one", "pd_property_two"],
}
# label -> options; the provider is the label's first word
OPTIONS: dict[str, dict[str, str]] = {"hmac": PYANNOTE, "hmac-pagerduty": PAGERDUTY}
UNTIMED = ("github", "shopify", "hmac-pagerduty")
REAL_HEADERS = [
    "webhook-id", "webhook-timestamp", "webhook-signature", "svix-id", "svix-timestamp",
    "svix-signature", "x-hub-signature-256", "x-github-event", "x-shopify-hmac-sha256",
    "x-shopify-topic", "x-signature", "x-request-timestamp", "x-pagerduty-signature",
]  # fmt: skip
b64_strings = st.binary(max_size=70).map(lambda b: base64.b64encode(b).decode())
hex_strings = st.text("0123456789abcdefABCDEF", max_size=130)
timestamps = st.one_of(st.integers(NOW - 600, NOW + 600), st.integers(-(10**6), 10**20)).map(str)
header_values = st.one_of(
    st.text(max_size=120),
    timestamps,
    b64_strings,
    st.builds(lambda v, s: f"{v},{s}", st.sampled_from(["v1", "v1a", "v2", ""]), b64_strings),
    st.lists(
        st.builds(lambda v, s: f"{v},{s}", st.sampled_from(["v1", "v1a"]), b64_strings),
        max_size=3,
    ).map(" ".join),
    st.builds(lambda h: f"sha256={h}", hex_strings),
    st.builds(lambda h: f"sha256={h}", st.text("0123456789abcdef", min_size=64, max_size=64)),
    st.lists(st.builds(lambda h: f"v1={h}", hex_strings), max_size=3).map(",".join),
)
header_dicts = st.builds(
    lambda real, other: {**other, **real},
    st.fixed_dictionaries({}, optional=dict.fromkeys(REAL_HEADERS, header_values)),
    st.dictionaries(st.text(min_size=1, max_size=24).map(str.lower), header_values, max_size=3),
)
bodies = st.one_of(
    st.binary(max_size=512),
    st.text(max_size=256).map(str.encode),
    st.sampled_from([b"", b"{}", SW_BODY, GH_BODY, b"payload=%7B%7D", b"[1]"]),
)
NAMES = ["standard", "github", "shopify", "hmac", "hmac-pagerduty"]


def prop_provider(name: str) -> Provider:
    return get_provider(name.split("-")[0])(SECRETS[name], 300, OPTIONS.get(name))


def genuine(name: str, body: bytes, secret: str, ts: int) -> dict[str, str]:
    if name == "standard":
        return sw_headers("msg_prop", ts, standard_module.sign(secret, "msg_prop", ts, body))
    if name == "github":
        return {"x-hub-signature-256": gh_sign(secret, body)}
    if name == "shopify":
        return {"x-shopify-hmac-sha256": shopify_sign(secret, body)}
    if name == "hmac-pagerduty":
        return pagerduty_headers(body, "pd_retired", secret)
    return pyannote_headers(body, secret, ts)


@pytest.mark.parametrize("name", NAMES)
def test_random_requests_only_raise_verification_errors_and_never_pass(name: str) -> None:
    provider = prop_provider(name)

    @PROPERTY
    @given(headers=header_dicts, body=bodies, skew=st.integers(-300, 300))
    def check(headers: dict[str, str], body: bytes, skew: int) -> None:
        refused(provider, body, headers, NOW + skew)

    check()


@pytest.mark.parametrize("name", NAMES)
def test_well_shaped_forgeries_are_refused(name: str) -> None:
    """Every header right but the signature: random digests of the right size."""
    provider = prop_provider(name)

    @PROPERTY
    @given(body=bodies, forged=st.binary(min_size=32, max_size=32), skew=st.integers(-300, 300))
    def check(body: bytes, forged: bytes, skew: int) -> None:
        encoded = base64.b64encode(forged).decode()
        doubled = base64.b64encode(forged * 2).decode()  # an ed25519 signature's size
        headers = {
            **sw_headers("msg_f", NOW + skew, f"v1,{encoded} v1a,{doubled}"),
            "x-hub-signature-256": f"sha256={forged.hex()}",
            "x-shopify-hmac-sha256": encoded,
            "x-signature": encoded,
            "x-request-timestamp": str(NOW + skew),
            "x-pagerduty-signature": f"v1={forged.hex()},v1={forged.hex()[::-1]}",
        }
        assert isinstance(refused(provider, body, headers), SignatureMismatch)

    check()


@pytest.mark.parametrize("name", NAMES)
def test_genuine_requests_pass_inside_the_window_and_only_there(name: str) -> None:
    provider = prop_provider(name)

    @PROPERTY
    @given(
        body=st.binary(max_size=512),
        secret=st.sampled_from(SECRETS[name]),
        ts=st.integers(NOW - 900, NOW + 900),
    )
    def check(body: bytes, secret: str, ts: int) -> None:
        headers = genuine(name, body, secret, ts)
        if name in UNTIMED or abs(NOW - ts) <= 300:
            provider.verify(body, headers, now=NOW)
        else:
            assert isinstance(refused(provider, body, headers), TimestampOutOfTolerance)

    check()


@pytest.mark.parametrize("name", NAMES)
def test_any_change_to_a_signed_body_is_refused(name: str) -> None:
    provider = prop_provider(name)

    @PROPERTY
    @given(body=st.binary(min_size=1, max_size=512), data=st.data())
    def check(body: bytes, data: st.DataObject) -> None:
        headers = genuine(name, body, SECRETS[name][0], NOW)
        index = data.draw(st.integers(0, len(body) - 1))
        flip = data.draw(st.integers(1, 255))
        tampered = body[:index] + bytes([body[index] ^ flip]) + body[index + 1 :]
        assert isinstance(refused(provider, tampered, headers), SignatureMismatch)

    check()


@pytest.mark.parametrize("name", NAMES)
def test_payload_hooks_raise_only_payload_errors(name: str) -> None:
    """After verification the receiver calls these on the body: PayloadError or a result."""
    provider = prop_provider(name)

    @PROPERTY
    @given(body=bodies, headers=header_dicts)
    def check(body: bytes, headers: dict[str, str]) -> None:
        assert provider.pre_verify_reply(body, headers) is None
        webhook = Webhook(source=name, provider=name, body=body, headers=headers)
        try:
            provider.check_payload(webhook)
        except PayloadError:
            return
        delivery_id = provider.delivery_id(webhook)
        assert delivery_id is None or (isinstance(delivery_id, str) and delivery_id)
        reply = provider.handshake(webhook)
        assert reply is None or (name == "github" and reply.status == 200)
        if name == "github":
            assert (reply is not None) == (webhook.header("x-github-event") == "ping")

    check()


# -- Through the real receiver -----------------------------------------------------------------


def test_new_providers_over_a_real_socket(tmp_path: Any) -> None:
    """Genuine requests become events at the Event API; a ping is answered; forgeries get 401.

    Each source uses its provider's built-in transform, found by name as in production. The
    Standard Webhooks and generic sources are not named after their ``prefix``: events are.
    """
    sources = [
        SourceConfig(name="github", provider="github", secrets=["inline:gh_secret"]),
        SourceConfig(name="shopify", provider="shopify", secrets=["inline:shpss_secret"]),
        SourceConfig(name="svix-clerk", provider="standard", prefix="clerk",
                     secrets=[f"inline:{SW_SECRET}"]),
        SourceConfig(name="acme-prod", provider="hmac", prefix="acme", secrets=["inline:acme_k"],
                     options={"header": "X-Acme-Signature", "prefix": "sha256="}),
    ]  # fmt: skip
    with event_api() as api:
        config = Config(
            gateway=GatewayConfig(data_dir=str(tmp_path), strict_names=True),
            sources=sources,
            inngest=InngestConfig(base_url=api.url, event_key="inline:test-key"),
            forwarder=ForwarderConfig(backoff_base=0.01, backoff_max=0.05, idle_poll=0.02),
        )
        with run_gateway(config) as gw, httpx.Client(base_url=gw.url, timeout=10) as client:
            ping = fixture("more/github/ping.json")
            response = client.post(
                "/webhooks/github", content=ping, headers=gh_headers(ping, "gh_secret", "ping", "p")
            )
            assert (response.status_code, response.json()) == (200, {"ok": True})

            push = fixture("more/github/push.json")
            form = urlencode({"payload": fixture("more/github/pull_request.opened.json").decode()})
            order = fixture("more/shopify/orders.create.json")
            clerk = fixture("more/standard/clerk.user.created.json")
            now = int(time.time())
            acme = b'{"type": "invoice.paid", "id": "inv_1"}'
            genuine = [
                ("github", push, gh_headers(push, "gh_secret", "push", "d-push")),
                ("github", form.encode(), {
                    **gh_headers(form.encode(), "gh_secret", "pull_request", "d-pr"),
                    "content-type": "application/x-www-form-urlencoded",
                }),
                ("shopify", order, shopify_headers(order, "shpss_secret")),
                ("svix-clerk", clerk, sw_headers(
                    "msg_e2e", now, lib_sign(SW_SECRET, "msg_e2e", now, clerk), "svix")),
                ("acme-prod", acme, {"x-acme-signature": "sha256=" + mac("acme_k", acme).hex()}),
            ]  # fmt: skip
            for source, body, headers in genuine:
                response = client.post(f"/webhooks/{source}", content=body, headers=headers)
                assert response.status_code == 200, response.text
                assert response.json()["status"] == "accepted"
                assert response.json()["events"] == 1

            forged = [
                ("github", push, gh_headers(push, "wrong", "push", "d-x"), "signature_mismatch"),
                ("shopify", order, {}, "missing_signature"),
                ("svix-clerk", clerk, sw_headers("msg_old", now - 301, lib_sign(
                    SW_SECRET, "msg_old", now - 301, clerk)), "timestamp_out_of_tolerance"),
                ("acme-prod", acme, {"x-acme-signature": "nope"}, "malformed_signature"),
            ]  # fmt: skip
            for source, body, headers, reason in forged:
                response = client.post(f"/webhooks/{source}", content=body, headers=headers)
                assert response.status_code == 401
                assert response.json()["reason"] == reason

            assert api.wait_for_events(5)
            by_name = {event["name"]: event for event in api.events}
            assert set(by_name) == {
                "github/push",
                "github/pull_request.opened",
                "shopify/orders.create",
                "clerk/user.created",
                "acme/invoice.paid",
            }
            assert by_name["github/push"]["id"] == "github-d-push"
            assert by_name["github/pull_request.opened"]["data"]["number"] == 2
            assert by_name["shopify/orders.create"]["v"] == "2024-07"
            assert by_name["clerk/user.created"]["id"] == "clerk-msg_e2e"
            assert by_name["acme/invoice.paid"]["data"] == json.loads(acme)
            assert "id" not in by_name["acme/invoice.paid"]  # no id_header / id_path set
