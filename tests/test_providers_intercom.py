"""Intercom verifier: X-Hub-Signature (HMAC-SHA1 of the body), the ping handshake, delivery ids."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from gateway.providers import (
    MalformedSignature,
    MissingSignature,
    Reply,
    SignatureMismatch,
    VerificationError,
    get_provider,
)
from gateway.providers.intercom import IntercomProvider, parse_header
from gateway.webhook import PayloadError, Webhook
from tests.helpers import fixture
from tests.signing import sign_intercom

SECRET = "intercom_client_secret_for_tests"


def provider(*secrets: str) -> IntercomProvider:
    return IntercomProvider(list(secrets or [SECRET]), None)


def webhook(body: bytes) -> Webhook:
    return Webhook(source="intercom", provider="intercom", body=body)


def sha1_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def refuse(
    p: IntercomProvider, body: bytes, header: str | None, kind: type[VerificationError]
) -> VerificationError:
    headers = {} if header is None else {"x-hub-signature": header}
    with pytest.raises(kind) as info:
        p.verify(body, headers)
    error = info.value
    assert type(error) is kind and error.status_code == 401
    for secret in p.secrets:
        assert secret not in error.reason
        assert sha1_hex(secret, body) not in error.reason
    return error


def test_registered_under_intercom() -> None:
    assert get_provider("intercom") is IntercomProvider
    assert IntercomProvider.body_kind == "json"


def test_published_scheme() -> None:
    """``sha1=`` + hex HMAC-SHA1 of the raw body (Intercom's "Signed Notifications")."""
    body = fixture("intercom/conversation.user.created.json")
    headers = sign_intercom(body, SECRET)
    assert headers["x-hub-signature"] == "sha1=" + sha1_hex(SECRET, body)
    assert len(headers["x-hub-signature"]) == len("sha1=") + 40
    provider().verify(body, headers)
    # no timestamp: the same request verifies whatever the clock says
    provider().verify(body, headers, now=0)
    provider().verify(body, headers, now=10**10)


def test_uppercase_hex_and_any_configured_secret() -> None:
    body = fixture("intercom/ping.json")
    digest = sha1_hex(SECRET, body)
    provider().verify(body, {"x-hub-signature": "sha1=" + digest.upper()})
    provider("old_client_secret", SECRET).verify(body, sign_intercom(body, SECRET))
    refuse(provider("old_client_secret"), body, "sha1=" + digest, SignatureMismatch)


def test_repeated_header_any_part_may_match() -> None:
    body = fixture("intercom/ping.json")
    good = "sha1=" + sha1_hex(SECRET, body)
    provider().verify(body, {"x-hub-signature": f"sha1={'0' * 40}, {good}"})
    refuse(provider(), body, f"{good}, sha1=xyz", MalformedSignature)


def test_wrong_secret() -> None:
    body = fixture("intercom/conversation.user.created.json")
    header = sign_intercom(body, "someone_elses_secret")["x-hub-signature"]
    refuse(provider(), body, header, SignatureMismatch)


def test_tampered_body() -> None:
    body = fixture("intercom/conversation.user.created.json")
    header = sign_intercom(body, SECRET)["x-hub-signature"]
    tampered = body.replace(b'"open": true', b'"open": false')
    assert tampered != body
    refuse(provider(), tampered, header, SignatureMismatch)
    refuse(provider(), body + b"\n", header, SignatureMismatch)


@pytest.mark.parametrize("header", [None, "", "  "])
def test_missing_header(header: str | None) -> None:
    refuse(provider(), b"{}", header, MissingSignature)


@pytest.mark.parametrize(
    "header",
    [
        "0" * 40,  # no sha1= prefix
        "sha256=" + "0" * 64,
        "SHA1=" + "0" * 40,
        "sha1:" + "0" * 40,
        "sha1=" + "0" * 39,  # too short
        "sha1=" + "0" * 41,  # too long
        "sha1=" + "0" * 64,  # a SHA-256 length
        "sha1=" + "g" * 40,  # not hex
        "sha1=" + "0" * 39 + "é",
        "sha1=" + "0" * 20 + " " + "0" * 19,
        "sha1=",
    ],
)
def test_malformed_header(header: str) -> None:
    refuse(provider(), b"{}", header, MalformedSignature)


def test_parse_header_normalizes_case() -> None:
    assert parse_header("sha1=" + "AB" * 20) == ["ab" * 20]


def test_ping_is_answered_and_never_an_event() -> None:
    body = fixture("intercom/ping.json")
    p = provider()
    p.verify(body, sign_intercom(body, SECRET))
    hook = webhook(body)
    p.check_payload(hook)
    assert p.handshake(hook) == Reply(200, {"ok": True})
    assert p.delivery_id(hook) is None  # ping's id is null: never a dedup key
    assert json.loads(body)["id"] is None and json.loads(body)["topic"] == "ping"


def test_notification_carries_its_id_and_is_not_a_handshake() -> None:
    body = fixture("intercom/conversation.user.created.json")
    note = json.loads(body)
    assert note["type"] == "notification_event" and note["topic"] == "conversation.user.created"
    item = note["data"]["item"]
    assert item["type"] == "conversation" and item["source"]["author"]["type"] == "user"
    p = provider()
    hook = webhook(body)
    p.check_payload(hook)
    assert p.handshake(hook) is None
    assert p.delivery_id(hook) == note["id"] and note["id"].startswith("notif_")


def test_ids_that_are_not_usable_are_none() -> None:
    for body in (b'{"topic": "x"}', b'{"id": ""}', b'{"id": 7}'):
        assert provider().delivery_id(webhook(body)) is None


def test_body_must_be_a_json_object() -> None:
    for body in (b"[]", b"topic=ping", b'"ping"'):
        with pytest.raises(PayloadError):
            provider().check_payload(webhook(body))
