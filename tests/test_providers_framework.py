"""The provider building blocks (issue 14.4-14.6) and the body-digest dedup (13.12).

Each generic mode is cross-checked with a real sender's tooling where one exists: the
``stripe`` package for a packed ``t=...,v1=...`` header, ``standardwebhooks`` for a prefixed
base64 key, ``cryptography`` keys for ed25519 and ECDSA. Request-level behaviour (GET handshakes,
405, replays of a captured signed body) goes through a real server over loopback.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import standardwebhooks
import stripe
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.config import (
    Config,
    ConsoleConfig,
    ConsoleToken,
    GatewayConfig,
    OutboxConfig,
    SourceConfig,
    config_from_env,
)
from gateway.outbox.sqlite import SQLiteOutbox
from gateway.providers import (
    Inbound,
    MalformedSignature,
    MissingSignature,
    Provider,
    SignatureMismatch,
    TimestampOutOfTolerance,
    VerificationError,
    get_provider,
    provider_names,
)
from gateway.providers.listing import markdown_table, provider_rows
from gateway.providers.shopify import sign as shopify_sign
from tests.helpers import fixture
from tests.server import run_gateway

NOW = 1_700_000_000
ROOT = Path(__file__).resolve().parents[1]


def make(name: str, *secrets: str, tolerance: int | None = 300, **options: Any) -> Provider:
    return get_provider(name)(list(secrets), tolerance, options)


def refused(provider: Provider, request: Inbound, now: float = NOW) -> VerificationError:
    with pytest.raises(VerificationError) as info:
        provider.verify_request(request, now=now)
    for secret in provider.secrets:
        assert secret not in info.value.reason
    return info.value


def post(
    body: bytes, headers: dict[str, str], path: str = "/webhooks/x", query: str = ""
) -> Inbound:
    return Inbound("POST", body, headers, path, query)


BODY = b'{"type":"invoice.paid","id":"evt_1","amount":12}'


# -- packed headers -----------------------------------------------------------------------------

STRIPE_LIKE = {
    "header": "Stripe-Signature",
    "signature_key": "v1",
    "timestamp_key": "t",
    "signed_content": "{timestamp}.{body}",
}


def test_packed_header_agrees_with_the_stripe_package_both_ways() -> None:
    provider = make("hmac", "whsec_k", **STRIPE_LIKE)
    header = stripe.WebhookSignature.generate_signature_header(BODY.decode(), "whsec_k", NOW)
    provider.verify_request(post(BODY, {"stripe-signature": header}), now=NOW)
    signed = provider.sign(BODY, timestamp=NOW)["stripe-signature"]
    stripe.WebhookSignature.verify_header(BODY.decode(), signed, "whsec_k", tolerance=None)
    # several v1 (a rolled secret), v0 ignored
    provider.verify_request(
        post(BODY, {"stripe-signature": f"{header},v1={'0' * 64},v0=ab"}), now=NOW
    )


def test_packed_header_broken_one_way_at_a_time() -> None:
    provider = make("hmac", "whsec_k", **STRIPE_LIKE)
    header = stripe.WebhookSignature.generate_signature_header(BODY.decode(), "whsec_k", NOW)
    sig = header.split("v1=")[1]
    cases: list[tuple[bytes, str, type[VerificationError]]] = [
        (BODY + b" ", header, SignatureMismatch),  # body
        (BODY, f"t={NOW + 1},v1={sig}", SignatureMismatch),  # timestamp
        (BODY, f"t={NOW},v1={'1' * 64}", SignatureMismatch),  # signature
        (BODY, f"t={NOW},t={NOW},v1={sig}", MalformedSignature),  # two timestamps
        (BODY, f"v1={sig}", MalformedSignature),
        (BODY, f"t={NOW}", MalformedSignature),
        (BODY, f"t=soon,v1={sig}", MalformedSignature),
    ]
    for body, value, error in cases:
        assert type(refused(provider, post(body, {"stripe-signature": value}))) is error
    other_key = make("hmac", "whsec_other", **STRIPE_LIKE)  # key
    assert type(refused(other_key, post(BODY, {"stripe-signature": header}))) is SignatureMismatch
    for skew in (-301, 301):  # both directions
        error = refused(provider, post(BODY, {"stripe-signature": header}), now=NOW + skew)
        assert type(error) is TimestampOutOfTolerance


def test_semicolon_packed_header_with_ms_and_iso_timestamps() -> None:
    """``ts=...;h1=...`` (Paddle's shape); the timestamp in ms, or ISO-8601, windowed both ways."""
    for fmt, stamp in (
        ("unix", str(NOW)),
        ("ms", str(NOW * 1000)),
        ("iso", datetime.fromtimestamp(NOW, UTC).isoformat()),
    ):
        options = {
            "header": "Paddle-Signature",
            "signature_key": "h1",
            "timestamp_key": "ts",
            "pair_separator": ";",
            "signed_content": "{timestamp}:{body}",
            "timestamp_format": fmt,
        }
        provider = make("hmac", "pdl_ntfset_key", **options)
        mac = hmac.new(b"pdl_ntfset_key", stamp.encode() + b":" + BODY, hashlib.sha256).hexdigest()
        headers = {"paddle-signature": f"ts={stamp};h1={mac}"}
        provider.verify_request(post(BODY, headers), now=NOW + 299)
        provider.verify_request(post(BODY, headers), now=NOW - 299)
        for skew in (-301, 301):
            error = refused(provider, post(BODY, headers), now=NOW + skew)
            assert type(error) is TimestampOutOfTolerance
        assert provider.sign(BODY, timestamp=NOW) == headers or fmt == "iso"
        provider.verify_request(post(BODY, provider.sign(BODY, timestamp=NOW)), now=NOW)


def test_timestamp_header_in_ms_and_iso_refuses_garbage() -> None:
    provider = make(
        "hmac", "k", header="X-Sig", timestamp_header="X-Ts", timestamp_format="iso",
        signed_content="{timestamp}{body}",
    )  # fmt: skip
    for bad in ("2023-11-14T22:13:20", "yesterday", "9" * 50):
        headers = {"x-sig": "00" * 32, "x-ts": bad}
        assert type(refused(provider, post(BODY, headers))) is MalformedSignature
    headers = provider.sign(BODY, timestamp=NOW)
    assert headers["x-ts"] == "2023-11-14T22:13:20Z"
    provider.verify_request(post(BODY, headers), now=NOW)


# -- keys, tokens, Basic -------------------------------------------------------------------------


def test_prefixed_base64_key_agrees_with_standardwebhooks() -> None:
    """Key decoding (base64 after a stripped ``whsec_``) checked against the spec's library."""
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123").decode()
    options = {
        "header": "webhook-signature",
        "prefix": "v1,",
        "separator": " ",
        "encoding": "base64",
        "key_encoding": "base64",
        "key_prefix": "whsec_",
        "timestamp_header": "webhook-timestamp",
        "signed_content": "{header:webhook-id}.{timestamp}.{body}",
    }
    provider = make("hmac", secret, **options)
    signature = standardwebhooks.Webhook(secret).sign(
        "msg_1", datetime.fromtimestamp(NOW, UTC), BODY.decode()
    )
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(NOW), "webhook-signature": signature}
    provider.verify_request(post(BODY, headers), now=NOW)
    assert (
        type(refused(provider, post(BODY, {**headers, "webhook-id": "msg_2"}))) is SignatureMismatch
    )


def test_hex_key_and_bad_keys() -> None:
    key = "a1" * 16
    provider = make("hmac", key, header="X-Sig", key_encoding="hex")
    mac = hmac.new(bytes.fromhex(key), BODY, hashlib.sha256).hexdigest()
    provider.verify_request(post(BODY, {"x-sig": mac}), now=NOW)
    text_keyed = make("hmac", key, header="X-Sig")  # the same text as a text key: no match
    assert type(refused(text_keyed, post(BODY, {"x-sig": mac}))) is SignatureMismatch
    with pytest.raises(ValueError, match="secret #1: the key is not hex"):
        make("hmac", "zz", header="X-Sig", key_encoding="hex")
    with pytest.raises(ValueError, match="secret #2: the key is not base64"):
        make("hmac", "AAAA", "no base64!", header="X-Sig", key_encoding="base64")


def test_static_token_and_basic_auth_modes() -> None:
    token = make("hmac", "tok-1", "tok-2", mode="token", header="X-Telegram-Bot-Api-Secret-Token")
    token.verify_request(post(BODY, {"x-telegram-bot-api-secret-token": "tok-2"}))
    for value in ("tok-3", "tok-", "tok-1 ", "ü"):
        headers = {"x-telegram-bot-api-secret-token": value}
        assert type(refused(token, post(BODY, headers))) is SignatureMismatch
    assert type(refused(token, post(BODY, {}))) is MissingSignature
    bearer = make("hmac", "tok-1", mode="token", header="Authorization", prefix="Bearer ")
    bearer.verify_request(post(BODY, bearer.sign(BODY)))
    assert bearer.sign(BODY) == {"authorization": "Bearer tok-1"}

    basic = make("hmac", "user:pass word", mode="basic")
    good = {"authorization": "Basic " + base64.b64encode(b"user:pass word").decode()}
    basic.verify_request(post(BODY, good))
    assert basic.sign(BODY) == good
    wrong = {"authorization": "Basic " + base64.b64encode(b"user:pass").decode()}
    assert type(refused(basic, post(BODY, wrong))) is SignatureMismatch
    for bad in ("Bearer x", "Basic", "Basic %%%"):
        assert type(refused(basic, post(BODY, {"authorization": bad}))) is MalformedSignature
    with pytest.raises(ValueError, match="signed_content does not apply to mode basic"):
        make("hmac", "u:p", mode="basic", signed_content="{timestamp}{body}")


# -- method, path, url -------------------------------------------------------------------------


def test_method_path_and_url_placeholders() -> None:
    provider = make("hmac", "k", header="X-Sig", signed_content="{method}{path}{body}")
    content = b"POST/webhooks/x?a=1&b=2" + BODY
    mac = hmac.new(b"k", content, hashlib.sha256).hexdigest()
    provider.verify_request(post(BODY, {"x-sig": mac}, "/webhooks/x", "a=1&b=2"))
    assert (
        type(refused(provider, post(BODY, {"x-sig": mac}, "/webhooks/x", "a=1")))
        is SignatureMismatch
    )
    moved = Inbound("PUT", BODY, {"x-sig": mac}, "/webhooks/x", "a=1&b=2")
    assert type(refused(provider, moved)) is SignatureMismatch
    signed = provider.sign(BODY, url="https://hooks.example.com/webhooks/x?a=1&b=2")
    provider.verify_request(post(BODY, signed, "/webhooks/x", "a=1&b=2"))


# -- public keys ---------------------------------------------------------------------------------


def test_ed25519_public_keys_raw_hex_and_pem() -> None:
    private = Ed25519PrivateKey.generate()
    raw_hex = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    pem = (
        private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    )
    options = {
        "mode": "ed25519",
        "header": "X-Signature-Ed25519",
        "timestamp_header": "X-Signature-Timestamp",
        "signed_content": "{timestamp}{body}",
    }
    headers = {
        "x-signature-ed25519": private.sign(str(NOW).encode() + BODY).hex(),
        "x-signature-timestamp": str(NOW),
    }
    for key in (raw_hex, pem):
        provider = make("hmac", key, **options)
        provider.verify_request(post(BODY, headers), now=NOW)
        assert type(refused(provider, post(BODY + b"x", headers))) is SignatureMismatch
        with pytest.raises(NotImplementedError):
            provider.sign(BODY)
    stranger = make(
        "hmac",
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
        .hex(),
        **options,
    )
    assert type(refused(stranger, post(BODY, headers))) is SignatureMismatch
    with pytest.raises(ValueError, match="not an ed25519 public key"):
        make("hmac", "abcd", **options)


def test_ecdsa_p256_public_key_base64_der() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    options = {
        "mode": "ecdsa",
        "header": "X-Twilio-Email-Event-Webhook-Signature",
        "encoding": "base64",
        "timestamp_header": "X-Twilio-Email-Event-Webhook-Timestamp",
        "signed_content": "{timestamp}{body}",
    }
    provider = make("hmac", base64.b64encode(der).decode(), **options)
    signature = private.sign(str(NOW).encode() + BODY, ec.ECDSA(hashes.SHA256()))
    headers = {
        "x-twilio-email-event-webhook-signature": base64.b64encode(signature).decode(),
        "x-twilio-email-event-webhook-timestamp": str(NOW),
    }
    provider.verify_request(post(BODY, headers), now=NOW)
    assert type(refused(provider, post(BODY + b" ", headers))) is SignatureMismatch
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(ValueError, match="P-256"):
        make(
            "hmac",
            base64.b64encode(
                p384.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
            ).decode(),
            **options,
        )


# -- the base class's agreed defaults --------------------------------------------------------------


def test_base_class_sign_and_secret_problem_defaults() -> None:
    stripe_provider = make("stripe", "whsec_x")
    with pytest.raises(NotImplementedError, match="stripe: the gateway cannot sign"):
        Provider.sign(stripe_provider, b"{}")
    assert Provider.secret_problem.__func__(type(stripe_provider), "x") is None  # type: ignore[attr-defined]
    assert get_provider("hmac").secret_problem("anything") is None


# -- handshakes over a real socket ---------------------------------------------------------------


def test_get_handshake_answered_only_with_the_verify_token_and_never_stored(tmp_path: Path) -> None:
    sources = [
        SourceConfig(name="meta", provider="meta", secrets=["inline:app-secret"],
                     options={"verify_token": "env:META_VERIFY_TOKEN"}),
        SourceConfig(name="github", provider="github", secrets=["inline:gh"]),
    ]  # fmt: skip
    config = Config(gateway=GatewayConfig(data_dir=str(tmp_path)), sources=sources)
    config.forwarder.enabled = False
    config.console = ConsoleConfig(
        enabled=True, port=0, tokens=[ConsoleToken(secret="inline:console-read")]
    )
    env = {"META_VERIFY_TOKEN": "vt-123"}
    with run_gateway(config, env) as gw, httpx.Client(base_url=gw.url, timeout=10) as client:
        query = {
            "hub.mode": "subscribe",
            "hub.verify_token": "vt-123",
            "hub.challenge": "1158201444",
        }
        ok = client.get("/webhooks/meta", params=query)
        assert (ok.status_code, ok.text) == (200, "1158201444")
        assert ok.headers["content-type"].startswith("text/plain")
        wrong = client.get("/webhooks/meta", params={**query, "hub.verify_token": "vt-12"})
        assert wrong.status_code == 401 and wrong.json()["reason"] == "signature_mismatch"
        evil = client.get("/webhooks/meta", params={**query, "hub.challenge": "<script>\n"})
        assert evil.status_code == 401 and evil.json()["reason"] == "malformed_signature"
        other = client.get("/webhooks/github")
        assert other.status_code == 405 and other.json()["error"] == "method GET not allowed"
        metrics = client.get("/metrics").text
        assert re.search(r'handshakes_total\{provider="meta",source="meta"\} 1\.0', metrics)
        assert 'reason="method_not_allowed"' in metrics
    outbox = SQLiteOutbox.open(str(tmp_path), OutboxConfig(), {})
    try:
        recorded = {(r.reason, r.status, r.message) for r in outbox.rejections(source="meta")}
    finally:
        outbox.close()
    assert ("handshake", 200, "Meta subscribe check: hub.challenge echoed") in recorded
    assert (
        "signature_mismatch",
        401,
        "hub.verify_token does not match the configured verify token",
    ) in recorded


# -- body-digest dedup (13.12) ------------------------------------------------------------------


def gh(body: bytes, event: str, delivery: str) -> dict[str, str]:
    signature = "sha256=" + hmac.new(b"gh", body, hashlib.sha256).hexdigest()
    return {"x-hub-signature-256": signature, "x-github-event": event,
            "x-github-delivery": delivery, "content-type": "application/json"}  # fmt: skip


def test_a_captured_signed_body_cannot_be_replayed_as_new_events(tmp_path: Path) -> None:
    """GitHub's and Shopify's ids and names are unsigned headers: fresh ones must not make a
    replayed body new. Fails on the code before the body-digest dedup (events == 1)."""
    sources = [
        SourceConfig(name="github", provider="github", secrets=["inline:gh"]),
        SourceConfig(name="shopify", provider="shopify", secrets=["inline:shpss"]),
    ]
    config = Config(gateway=GatewayConfig(data_dir=str(tmp_path)), sources=sources)
    config.forwarder.enabled = False
    push = fixture("more/github/push.json")
    order = fixture("more/shopify/orders.create.json")
    with run_gateway(config) as gw, httpx.Client(base_url=gw.url, timeout=10) as client:
        first = client.post("/webhooks/github", content=push, headers=gh(push, "push", "d-1"))
        assert first.json()["events"] == 1
        for event, delivery in (("push", "d-2"), ("release", "d-3"), ("push", "d-1")):
            again = client.post("/webhooks/github", content=push, headers=gh(push, event, delivery))
            assert again.status_code == 200
            assert (again.json()["events"], again.json()["duplicates"]) == (0, 1)
        other = push.replace(b'"ref"', b'"ref" ', 1)
        assert (
            client.post("/webhooks/github", content=other, headers=gh(other, "push", "d-4")).json()[
                "events"
            ]
            == 1
        )

        def shop(topic: str, event_id: str) -> dict[str, str]:
            return {"x-shopify-hmac-sha256": shopify_sign("shpss", order), "x-shopify-topic": topic,
                    "x-shopify-event-id": event_id, "content-type": "application/json"}  # fmt: skip

        assert (
            client.post(
                "/webhooks/shopify", content=order, headers=shop("orders/create", "e1")
            ).json()["events"]
            == 1
        )
        replay = client.post(
            "/webhooks/shopify", content=order, headers=shop("orders/cancelled", "e2")
        )
        assert (replay.json()["events"], replay.json()["duplicates"]) == (0, 1)


def test_providers_with_a_signed_timestamp_do_not_dedup_on_the_body() -> None:
    assert not make("stripe", "whsec_x").body_dedup()
    assert make("github", "x").body_dedup() and make("shopify", "x").body_dedup()
    assert make("hmac", "k", header="X-Sig").body_dedup()
    assert not make("hmac", "k", **STRIPE_LIKE).body_dedup()


# -- discoverable: the providers command, the docs table, zero-config ---------------------------


def test_providers_command_lists_every_provider_with_its_variable() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "providers", "-o", "json"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    rows = json.loads(result.stdout)
    assert [row["provider"] for row in rows] == provider_names()
    by_name = {row["provider"]: row for row in rows}
    assert by_name["meta"]["zero-config variable"] == "META_WEBHOOK_SECRET, META_VERIFY_TOKEN"
    assert by_name["slack"]["zero-config variable"] == "SLACK_SIGNING_SECRET"
    assert "body digest" in by_name["github"]["dedup id"]
    windows = {name: by_name[name]["replay window"] for name in ("stripe", "paddle", "github")}
    assert windows == {"stripe": "300 s", "paddle": "5 s", "github": "none: body digest"}
    assert "tolerance" in by_name["hmac"]["replay window"]
    for row in rows:
        assert row["verification"] and row["handshake"] and row["dedup id"]
        assert row["replay window"]


def test_docs_table_matches_the_providers_metadata() -> None:
    docs = (ROOT / "docs" / "providers-more.md").read_text()
    assert markdown_table(provider_rows()) in docs


def test_every_named_provider_is_enabled_by_its_variable() -> None:
    env = {"GITLAB_WEBHOOK_SECRET": "tok", "META_WEBHOOK_SECRET": "s1,s2",
           "META_VERIFY_TOKEN": "vt", "SLACK_WEBHOOK_SECRET": "slack-secret"}  # fmt: skip
    sources = {s.name: s for s in config_from_env(env).sources}
    assert set(sources) == {"gitlab", "meta", "slack"}
    assert sources["meta"].resolved_secrets(env) == ["s1", "s2"]
    assert sources["meta"].options == {"verify_token": "vt"}
    assert sources["gitlab"].provider == "gitlab"
    both = config_from_env({"SLACK_SIGNING_SECRET": "a", "SLACK_WEBHOOK_SECRET": "b"})
    assert both.sources[0].secrets == ["env:SLACK_SIGNING_SECRET"]
