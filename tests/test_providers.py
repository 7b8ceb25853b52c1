"""Verifiers: published vectors, every bad-input case, provider tooling cross-checks."""

from __future__ import annotations

import hashlib
import hmac

import pytest
import stripe
from slack_sdk.signature import SignatureVerifier

from gateway.providers import (
    MalformedSignature,
    MissingSignature,
    SignatureMismatch,
    TimestampOutOfTolerance,
    VerificationError,
    get_provider,
    provider_names,
)
from gateway.webhook import PayloadError, Webhook
from tests.helpers import fixture
from tests.signing import intercom_headers, slack_headers, stripe_headers

STRIPE_VECTOR_BODY = (
    b'{\n  "id": "evt_test_webhook",\n  "object": "event",\n'
    b'  "data": { "object": { "id": "rdr_123", "object": "terminal.reader" } }\n}'
)
STRIPE_VECTOR_SIG = "07b1ede164afb7b5de91267ffa656f568c65d6e0783ce0ac55ee094643578eda"
SLACK_VECTOR_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_VECTOR_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmib"
    b"IGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_VECTOR_SIG = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def stripe_provider(*secrets: str, tolerance: int | None = 300):  # type: ignore[no-untyped-def]
    return get_provider("stripe")(list(secrets), tolerance)


def test_builtin_providers_registered() -> None:
    assert {"stripe", "slack", "intercom"} <= set(provider_names())
    with pytest.raises(KeyError, match="unknown provider 'nope'"):
        get_provider("nope")


def test_provider_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="at least one secret"):
        get_provider("stripe")([])


# -- Stripe ------------------------------------------------------------------------------


def test_stripe_published_vector() -> None:
    provider = stripe_provider("whsec_test_secret")
    header = {"stripe-signature": f"t=12345,v1={STRIPE_VECTOR_SIG}"}
    provider.verify(STRIPE_VECTOR_BODY, header, now=12345 + 10)
    # the stripe package agrees on the same vector
    assert stripe.WebhookSignature.verify_header(
        STRIPE_VECTOR_BODY, header["stripe-signature"], "whsec_test_secret"
    )


def test_stripe_headers_from_stripe_package_accepted() -> None:
    body = fixture("stripe/invoice.paid.json")
    stripe_provider("whsec_x").verify(body, lower(stripe_headers(body, "whsec_x")))


def test_stripe_any_secret_and_any_v1_signature() -> None:
    body = fixture("stripe/customer.created.json")
    old = lower(stripe_headers(body, "whsec_old", t=1000))["stripe-signature"]
    new = lower(stripe_headers(body, "whsec_new", t=1000))["stripe-signature"]
    both = f"{new},v1={old.split('v1=')[1]}"
    stripe_provider("whsec_new").verify(body, {"stripe-signature": both}, now=1000)
    stripe_provider("whsec_old").verify(body, {"stripe-signature": both}, now=1000)
    stripe_provider("whsec_other", "whsec_old").verify(body, {"stripe-signature": old}, now=1000)


def test_stripe_test_mode_v0_ignored_and_never_sufficient() -> None:
    body = b'{"id": "evt_1", "type": "customer.created"}'
    header = lower(stripe_headers(body, "whsec_x", t=1000))["stripe-signature"]
    sig = header.split("v1=")[1]
    with_v0 = f"{header},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"
    stripe_provider("whsec_x").verify(body, {"stripe-signature": with_v0}, now=1000)
    with pytest.raises(MalformedSignature, match="no v1"):
        stripe_provider("whsec_x").verify(body, {"stripe-signature": f"t=1000,v0={sig}"}, now=1000)


@pytest.mark.parametrize(
    ("header", "error"),
    [
        (None, MissingSignature),
        ("", MissingSignature),
        ("garbage", MalformedSignature),
        ("v1=abc", MalformedSignature),
        ("t=abc,v1=abc", MalformedSignature),
        ("t=12.5,v1=abc", MalformedSignature),
        ("t=1000", MalformedSignature),
        ("t=1000,v1=é", MalformedSignature),
        ("t=1000,v1=" + "0" * 64, SignatureMismatch),
    ],
)
def test_stripe_bad_headers(header: str | None, error: type[VerificationError]) -> None:
    headers = {} if header is None else {"stripe-signature": header}
    with pytest.raises(error) as info:
        stripe_provider("whsec_x").verify(b"{}", headers, now=1000)
    assert info.value.status_code == 401
    assert "whsec_x" not in info.value.reason


def test_stripe_wrong_secret_and_tampered_body() -> None:
    body = fixture("stripe/customer.created.json")
    headers = lower(stripe_headers(body, "whsec_right", t=1000))
    with pytest.raises(SignatureMismatch) as info:
        stripe_provider("whsec_wrong").verify(body, headers, now=1000)
    expected = hmac.new(b"whsec_wrong", b"1000." + body, hashlib.sha256).hexdigest()
    assert expected not in info.value.reason
    with pytest.raises(SignatureMismatch):
        stripe_provider("whsec_right").verify(body.replace(b"Jenny", b"Jerry"), headers, now=1000)


def test_stripe_non_utf8_body_refused_cleanly() -> None:
    with pytest.raises(SignatureMismatch, match="UTF-8"):
        stripe_provider("whsec_x").verify(b"\xff\xfe", {"stripe-signature": "t=1,v1=ab"}, now=1)


def test_stripe_timestamp_window_both_directions() -> None:
    body = b'{"id": "evt_1"}'
    headers = lower(stripe_headers(body, "whsec_x", t=10_000))
    provider = stripe_provider("whsec_x")
    provider.verify(body, headers, now=10_000 + 300)
    provider.verify(body, headers, now=10_000 - 300)
    with pytest.raises(TimestampOutOfTolerance):
        provider.verify(body, headers, now=10_000 + 301)
    with pytest.raises(TimestampOutOfTolerance):
        provider.verify(body, headers, now=10_000 - 301)
    stripe_provider("whsec_x", tolerance=0).verify(body, headers, now=10_000 + 10**6)
    stripe_provider("whsec_x", tolerance=600).verify(body, headers, now=10_000 + 599)


def test_stripe_delivery_id() -> None:
    body = fixture("stripe/customer.created.json")
    webhook = Webhook(source="stripe", provider="stripe", body=body)
    assert stripe_provider("whsec_x").delivery_id(webhook) == "evt_1NG8Du2eZvKYlo2CUI79vXWy"


# -- Slack -------------------------------------------------------------------------------


def slack_provider(*secrets: str):  # type: ignore[no-untyped-def]
    return get_provider("slack")(list(secrets), 300)


def test_slack_published_vector() -> None:
    headers = {"x-slack-request-timestamp": "1531420618", "x-slack-signature": SLACK_VECTOR_SIG}
    slack_provider(SLACK_VECTOR_SECRET).verify(SLACK_VECTOR_BODY, headers, now=1531420618)


class _Clock:
    def __init__(self, now: float) -> None:
        self.value = now

    def now(self) -> float:
        return self.value


@pytest.mark.parametrize(
    "name",
    [
        "message.json",
        "app_mention.json",
        "block_actions.form",
        "slash_command.form",
        "url_verification.json",
        "view_submission.form",
    ],
)
def test_slack_agrees_with_slack_sdk(name: str) -> None:
    body = fixture(f"slack/{name}")
    ts = 1_700_000_000
    headers = lower(slack_headers(body, "s3cret", ts=ts))
    sdk = SignatureVerifier("s3cret", clock=_Clock(ts))  # type: ignore[arg-type]
    assert sdk.is_valid_request(body, headers)
    slack_provider("s3cret").verify(body, headers, now=ts)
    tampered = body + b" "
    assert not sdk.is_valid_request(tampered, headers)
    with pytest.raises(SignatureMismatch):
        slack_provider("s3cret").verify(tampered, headers, now=ts)
    for late in (ts + 301, ts - 301):
        sdk.clock = _Clock(late)  # type: ignore[assignment]
        assert not sdk.is_valid_request(body, headers)
        with pytest.raises(TimestampOutOfTolerance):
            slack_provider("s3cret").verify(body, headers, now=late)


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, MissingSignature),
        ({"x-slack-signature": "v0=00"}, MissingSignature),
        ({"x-slack-request-timestamp": "1"}, MissingSignature),
        ({"x-slack-request-timestamp": "abc", "x-slack-signature": "v0=00"}, MalformedSignature),
        ({"x-slack-request-timestamp": "1", "x-slack-signature": "sha256=00"}, MalformedSignature),
        ({"x-slack-request-timestamp": "1", "x-slack-signature": "v0=é"}, MalformedSignature),
        ({"x-slack-request-timestamp": "1", "x-slack-signature": "v0=00"}, SignatureMismatch),
    ],
)
def test_slack_bad_headers(headers: dict[str, str], error: type[VerificationError]) -> None:
    with pytest.raises(error):
        slack_provider("s3cret").verify(b"{}", headers, now=1)


def test_slack_rotation_accepts_either_secret() -> None:
    body = fixture("slack/message.json")
    headers = lower(slack_headers(body, "old", ts=5000))
    slack_provider("new", "old").verify(body, headers, now=5000)


def test_slack_handshakes() -> None:
    provider = slack_provider("s3cret")
    ssl = b"ssl_check=1&token=abc"
    reply = provider.pre_verify_reply(ssl, {})
    assert reply is not None and reply.status == 200 and reply.body is None
    assert provider.pre_verify_reply(fixture("slack/message.json"), {}) is None
    body = fixture("slack/url_verification.json")
    hs = provider.handshake(Webhook(source="slack", provider="slack", body=body))
    assert hs is not None
    assert hs.body == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    event = Webhook(source="slack", provider="slack", body=fixture("slack/message.json"))
    assert provider.handshake(event) is None


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", b"payload=%7Bnot-json", b"payload=%5B1%5D", b"\xff\xfe=1"],
)
def test_slack_invalid_payloads(body: bytes) -> None:
    with pytest.raises(PayloadError):
        slack_provider("s").check_payload(Webhook(source="slack", provider="slack", body=body))


def test_slack_delivery_ids() -> None:
    provider = slack_provider("s")
    cases = {
        "slack/message.json": "Ev08MFMKH6",
        "slack/slash_command.form": "13345224609.738474920.8088930838d88f008e0",
        "slack/block_actions.form": "12466734323.1395872398.1d7c1b8cb6fd5f5d3c8a5a1e2b7e5b2f",
    }
    for name, expected in cases.items():
        webhook = Webhook(source="slack", provider="slack", body=fixture(name))
        assert provider.delivery_id(webhook) == expected


# -- Intercom ----------------------------------------------------------------------------


def intercom_provider(*secrets: str):  # type: ignore[no-untyped-def]
    return get_provider("intercom")(list(secrets), None)


def test_intercom_published_scheme() -> None:
    body = fixture("intercom/conversation.user.created.json")
    headers = lower(intercom_headers(body, "client_secret"))
    expected = "sha1=" + hmac.new(b"client_secret", body, hashlib.sha1).hexdigest()
    assert headers["x-hub-signature"] == expected
    intercom_provider("client_secret").verify(body, headers)
    intercom_provider("other", "client_secret").verify(body, headers)
    upper = {"x-hub-signature": "sha1=" + expected[5:].upper()}
    intercom_provider("client_secret").verify(body, upper)


@pytest.mark.parametrize(
    ("header", "error"),
    [
        (None, MissingSignature),
        ("0" * 40, MalformedSignature),
        ("sha1=" + "0" * 39, MalformedSignature),
        ("sha1=" + "z" * 40, MalformedSignature),
        ("sha256=" + "0" * 64, MalformedSignature),
        ("sha1=" + "0" * 40, SignatureMismatch),
    ],
)
def test_intercom_bad_headers(header: str | None, error: type[VerificationError]) -> None:
    headers = {} if header is None else {"x-hub-signature": header}
    with pytest.raises(error):
        intercom_provider("client_secret").verify(b"{}", headers)


def test_intercom_tampered_body_and_wrong_secret() -> None:
    body = fixture("intercom/conversation.user.created.json")
    headers = lower(intercom_headers(body, "client_secret"))
    with pytest.raises(SignatureMismatch):
        intercom_provider("client_secret").verify(body + b" ", headers)
    with pytest.raises(SignatureMismatch):
        intercom_provider("wrong").verify(body, headers)


def test_intercom_ping_answered_and_ids() -> None:
    provider = intercom_provider("s")
    ping = Webhook(source="intercom", provider="intercom", body=fixture("intercom/ping.json"))
    reply = provider.handshake(ping)
    assert reply is not None and reply.status == 200
    assert provider.delivery_id(ping) is None
    note = Webhook(
        source="intercom",
        provider="intercom",
        body=fixture("intercom/conversation.user.created.json"),
    )
    assert provider.handshake(note) is None
    assert provider.delivery_id(note) == "notif_4b4b8a8e-8b5e-4f77-8c8a-6c2a6f0c9d3e"
