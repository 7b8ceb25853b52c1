"""Slack verifier: the published vector, agreement with slack_sdk, handshakes, payload shapes."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import parse_qsl

import pytest
from slack_sdk.signature import Clock, SignatureVerifier

from gateway.providers import (
    MalformedSignature,
    MissingSignature,
    Reply,
    SignatureMismatch,
    TimestampOutOfTolerance,
    VerificationError,
    get_provider,
)
from gateway.providers.slack import SlackProvider
from gateway.webhook import PayloadError, Webhook
from tests.helpers import fixture
from tests.signing import sign_slack

VECTOR_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
VECTOR_TS = 1531420618
VECTOR_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmib"
    b"IGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
VECTOR_SIG = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"

SECRET = "slack_signing_secret_for_tests"
TS = 1_700_000_000
FIXTURES = {
    # fixture -> delivery id (event_id for event_callback, else trigger_id, else None)
    "message.json": "Ev08MFMKH6",
    "message.bot_message.json": "Ev08MFMKH7",
    "app_mention.json": "Ev0LAN670R",
    "app_rate_limited.json": None,
    "url_verification.json": None,
    "block_actions.form": "12466734323.1395872398.1d7c1b8cb6fd5f5d3c8a5a1e2b7e5b2f",
    "view_submission.form": "12345.98765.abcd2358fdea",
    "shortcut.form": "944799105734.773906753841.38b5894552bdd4a780554ee59d1f3638",
    "slash_command.form": "13345224609.738474920.8088930838d88f008e0",
}


class FixedClock(Clock):
    """slack_sdk's clock, pinned."""

    def __init__(self, now: float) -> None:
        self.value = now

    def now(self) -> float:
        return self.value


def provider(*secrets: str) -> SlackProvider:
    return SlackProvider(list(secrets or [SECRET]), 300)


def webhook(body: bytes, headers: dict[str, str] | None = None) -> Webhook:
    return Webhook(source="slack", provider="slack", body=body, headers=headers or {})


def refuse(
    p: SlackProvider,
    body: bytes,
    headers: dict[str, str],
    kind: type[VerificationError],
    now: float,
) -> VerificationError:
    with pytest.raises(kind) as info:
        p.verify(body, headers, now=now)
    assert type(info.value) is kind
    for secret in p.secrets:
        assert secret not in info.value.reason
    signature = headers.get("x-slack-signature")
    ts = headers.get("x-slack-request-timestamp")
    if ts and ts.isdigit():
        for secret in p.secrets:
            expected = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
            assert expected is not None and expected not in info.value.reason
    assert not signature or signature not in info.value.reason
    return info.value


def test_registered_under_slack() -> None:
    assert get_provider("slack") is SlackProvider
    assert SlackProvider.body_kind == "bytes"


def test_published_vector() -> None:
    headers = {"x-slack-request-timestamp": str(VECTOR_TS), "x-slack-signature": VECTOR_SIG}
    assert sign_slack(VECTOR_BODY, VECTOR_SECRET, VECTOR_TS)["x-slack-signature"] == VECTOR_SIG
    p = provider(VECTOR_SECRET)
    for now in (VECTOR_TS, VECTOR_TS + 300, VECTOR_TS - 300):
        p.verify(VECTOR_BODY, headers, now=now)
    for now in (VECTOR_TS + 301, VECTOR_TS - 301):
        refuse(p, VECTOR_BODY, headers, TimestampOutOfTolerance, now=now)
    # the vector is a slash command: a form, its trigger_id the delivery id
    hook = webhook(VECTOR_BODY, headers)
    p.check_payload(hook)
    assert p.delivery_id(hook) == "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    assert p.handshake(hook) is None


def accepted(p: SlackProvider, body: bytes, headers: dict[str, str], now: float) -> bool:
    try:
        p.verify(body, headers, now=now)
    except VerificationError:
        return False
    return True


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_agrees_with_slack_sdk(name: str) -> None:
    body = fixture(f"slack/{name}")
    headers = sign_slack(body, SECRET, TS)
    wrong_secret = sign_slack(body, "another_secret", TS)
    cases = [
        (body, headers),
        (body + b" ", headers),
        (body[:-1] + bytes([body[-1] ^ 1]), headers),  # one bit flipped
        (body, wrong_secret),
        (body, {**headers, "x-slack-request-timestamp": str(TS + 1)}),
    ]
    outcomes = []
    for candidate, candidate_headers in cases:
        for offset in (0, 299, -299, 300, -300, 301, -301, 3600):
            sdk = SignatureVerifier(SECRET, clock=FixedClock(TS + offset))
            ours = accepted(provider(), candidate, candidate_headers, TS + offset)
            assert ours == sdk.is_valid_request(candidate, candidate_headers), (candidate, offset)
            outcomes.append(ours)
    assert outcomes.count(True) == 5  # only the genuine request, and only inside the window


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixtures_verify_parse_and_carry_their_delivery_id(name: str) -> None:
    body = fixture(f"slack/{name}")
    headers = sign_slack(body, SECRET, TS)
    p = provider()
    p.verify(body, headers, now=TS)
    hook = webhook(body, headers)
    p.check_payload(hook)
    assert p.delivery_id(hook) == FIXTURES[name]
    assert p.pre_verify_reply(body, headers) is None


def test_form_fixtures_carry_json_payloads_of_their_kind() -> None:
    for name, kind in [
        ("block_actions.form", "block_actions"),
        ("view_submission.form", "view_submission"),
        ("shortcut.form", "shortcut"),
    ]:
        form = dict(parse_qsl(fixture(f"slack/{name}").decode()))
        assert json.loads(form["payload"])["type"] == kind
    command = dict(parse_qsl(fixture("slack/slash_command.form").decode()))
    assert command["command"] == "/weather" and "payload" not in command


def test_event_callback_envelope_shape() -> None:
    event = json.loads(fixture("slack/message.json"))
    assert event["type"] == "event_callback" and event["event_id"].startswith("Ev")
    assert {"token", "team_id", "api_app_id", "event", "event_time", "authorizations"} <= set(event)
    limited = json.loads(fixture("slack/app_rate_limited.json"))
    assert limited["type"] == "app_rate_limited" and "event" not in limited


def test_rotation_accepts_any_configured_secret() -> None:
    body = fixture("slack/message.json")
    headers = sign_slack(body, "old_secret", TS)
    provider("new_secret", "old_secret").verify(body, headers, now=TS)
    refuse(provider("new_secret"), body, headers, SignatureMismatch, now=TS)


def test_repeated_signature_header_any_part_may_match() -> None:
    body = fixture("slack/app_mention.json")
    good = sign_slack(body, SECRET, TS)
    bad = "v0=" + "0" * 64
    joined = {**good, "x-slack-signature": f"{bad}, {good['x-slack-signature']}"}
    provider().verify(body, joined, now=TS)
    refuse(provider(), body, {**good, "x-slack-signature": f"{bad}, {bad}"}, SignatureMismatch, TS)
    mixed = {**good, "x-slack-signature": f"{good['x-slack-signature']}, sha256=00"}
    refuse(provider(), body, mixed, MalformedSignature, TS)


def test_url_verification_answered_with_its_challenge() -> None:
    body = fixture("slack/url_verification.json")
    headers = sign_slack(body, SECRET, TS)
    p = provider()
    assert p.pre_verify_reply(body, headers) is None  # the challenge is verified first
    p.verify(body, headers, now=TS)
    hook = webhook(body, headers)
    p.check_payload(hook)
    reply = p.handshake(hook)
    assert reply == Reply(200, {"challenge": json.loads(body)["challenge"]})
    for name in ("message.json", "app_rate_limited.json", "block_actions.form"):
        assert p.handshake(webhook(fixture(f"slack/{name}"))) is None


def test_url_verification_without_a_challenge_is_a_payload_error() -> None:
    for body in (b'{"type": "url_verification"}', b'{"type": "url_verification", "challenge": 1}'):
        with pytest.raises(PayloadError, match="challenge"):
            provider().check_payload(webhook(body))


@pytest.mark.parametrize(
    "body",
    [
        b"ssl_check=1&token=Jhj5dZrVaK7ZwHHjRyZWjbDl",
        b"token=Jhj5dZrVaK7ZwHHjRyZWjbDl&ssl_check=1",
        b"ssl_check=1",
    ],
)
def test_ssl_check_answered_before_verification(body: bytes) -> None:
    assert provider().pre_verify_reply(body, {}) == Reply(200, None)


@pytest.mark.parametrize(
    "body",
    [
        b"ssl_check=0&token=x",
        b"token=x&text=ssl_check%3D1",
        b'{"ssl_check": "1"}',
        b'{"text": "ssl_check=1"}',
        b"ssl_check=1\xff",
        b"",
    ],
)
def test_no_ssl_check_reply_otherwise(body: bytes) -> None:
    assert provider().pre_verify_reply(body, {}) is None


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ({}, MissingSignature),
        ({"x-slack-signature": "v0=" + "0" * 64}, MissingSignature),
        ({"x-slack-request-timestamp": str(TS)}, MissingSignature),
        ({"x-slack-request-timestamp": " ", "x-slack-signature": "v0=00"}, MissingSignature),
        ({"x-slack-request-timestamp": str(TS), "x-slack-signature": ""}, MissingSignature),
        ({"x-slack-request-timestamp": "abc", "x-slack-signature": "v0=00"}, MalformedSignature),
        ({"x-slack-request-timestamp": "-5", "x-slack-signature": "v0=00"}, MalformedSignature),
        ({"x-slack-request-timestamp": "1.5", "x-slack-signature": "v0=00"}, MalformedSignature),
        ({"x-slack-request-timestamp": "\u0661", "x-slack-signature": "v0=00"}, MalformedSignature),
        (
            {"x-slack-request-timestamp": "9" * 400, "x-slack-signature": "v0=00"},
            MalformedSignature,
        ),
        ({"x-slack-request-timestamp": str(TS), "x-slack-signature": "v1=00"}, MalformedSignature),
        ({"x-slack-request-timestamp": str(TS), "x-slack-signature": "00ab"}, MalformedSignature),
        ({"x-slack-request-timestamp": str(TS), "x-slack-signature": "v0=é"}, MalformedSignature),
        ({"x-slack-request-timestamp": str(TS), "x-slack-signature": "v0=00"}, SignatureMismatch),
        ({"x-slack-request-timestamp": str(TS), "x-slack-signature": "v0="}, SignatureMismatch),
    ],
)
def test_missing_and_malformed_headers(
    headers: dict[str, str], kind: type[VerificationError]
) -> None:
    refuse(provider(), b'{"type": "event_callback"}', headers, kind, now=TS)


def test_slack_sdk_raises_value_error_where_we_raise_malformed() -> None:
    """Why the verifier parses the timestamp itself."""
    headers = {"x-slack-request-timestamp": "abc", "x-slack-signature": "v0=00"}
    with pytest.raises(ValueError):
        SignatureVerifier(SECRET, clock=FixedClock(TS)).is_valid_request(b"{}", headers)
    refuse(provider(), b"{}", headers, MalformedSignature, now=TS)


def test_replay_outside_the_window_is_refused() -> None:
    body = fixture("slack/message.json")
    headers = sign_slack(body, SECRET, TS)
    later = TS + 600
    refuse(provider(), body, headers, TimestampOutOfTolerance, now=later)
    # refreshing the timestamp breaks the signature
    fresh = {**headers, "x-slack-request-timestamp": str(later)}
    refuse(provider(), body, fresh, SignatureMismatch, now=later)


def test_signature_is_checked_before_the_timestamp() -> None:
    body = fixture("slack/message.json")
    forged = {"x-slack-request-timestamp": str(TS), "x-slack-signature": "v0=" + "ab" * 32}
    refuse(provider(), body, forged, SignatureMismatch, now=TS + 10_000)


@pytest.mark.parametrize(
    "body",
    [
        b"payload=%7Bnot-json",  # payload field is not JSON
        b"payload=%5B1%2C2%5D",  # payload field is a JSON array
        b"payload=%22block_actions%22",  # payload field is a JSON string
        b"{not json",
        b"[1, 2]",
        b"  [] ",
        b"\xff\xfe=1",
        b"just some words",
        b"a=1&&b=2",
        b"",
        b"   ",
    ],
)
def test_bodies_slack_never_sends_are_payload_errors(body: bytes) -> None:
    # signed on the raw bytes (slack_sdk cannot sign a body that is not UTF-8)
    digest = hmac.new(SECRET.encode(), f"v0:{TS}:".encode() + body, hashlib.sha256).hexdigest()
    headers = {"x-slack-request-timestamp": str(TS), "x-slack-signature": f"v0={digest}"}
    provider().verify(body, headers, now=TS)  # authentic, yet not a Slack payload
    with pytest.raises(PayloadError):
        provider().check_payload(webhook(body, headers))


def test_form_without_payload_field_is_the_form_itself() -> None:
    body = b"command=%2Fdeploy&text=prod&trigger_id=1.2.abc&user_id=U1"
    provider().check_payload(webhook(body))
    assert provider().delivery_id(webhook(body)) == "1.2.abc"
    assert provider().delivery_id(webhook(b"command=%2Fdeploy&text=")) is None
