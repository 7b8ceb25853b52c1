"""Stripe verifier: the published vector, stripe-signed fixtures, every way to be refused."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
import stripe

from gateway.providers import (
    MalformedSignature,
    MissingSignature,
    SignatureMismatch,
    TimestampOutOfTolerance,
    VerificationError,
    get_provider,
)
from gateway.providers.stripe import StripeProvider, parse_header, refusal_for
from gateway.webhook import PayloadError, Webhook
from tests.helpers import fixture
from tests.signing import sign_stripe

VECTOR_SECRET = "whsec_test_secret"
VECTOR_BODY = (
    b'{\n  "id": "evt_test_webhook",\n  "object": "event",\n'
    b'  "data": { "object": { "id": "rdr_123", "object": "terminal.reader" } }\n}'
)
VECTOR_T = 12345
VECTOR_V1 = "07b1ede164afb7b5de91267ffa656f568c65d6e0783ce0ac55ee094643578eda"

SECRET = "whsec_gateway_unit_secret"
T = 1_700_000_000
FIXTURES = [
    "customer.created.json",
    "customer.updated.json",
    "invoice.paid.json",
    "checkout.session.completed.json",
    "connect.account.updated.json",
    "thin.meter_error.json",
]


def provider(*secrets: str, tolerance: int | None = 300) -> StripeProvider:
    return StripeProvider(list(secrets or [SECRET]), tolerance)


def v1_of(body: bytes, secret: str, t: int) -> str:
    """The expected signature, computed independently of the stripe package."""
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def refuse(
    p: StripeProvider, body: bytes, header: str | None, kind: type[VerificationError], now: float
) -> VerificationError:
    headers = {} if header is None else {"stripe-signature": header}
    with pytest.raises(kind) as info:
        p.verify(body, headers, now=now)
    error = info.value
    assert type(error) is kind
    assert error.status_code == 401
    for secret in p.secrets:
        assert secret not in error.reason
        assert v1_of(body, secret, T) not in error.reason
    return error


def test_registered_under_stripe() -> None:
    assert get_provider("stripe") is StripeProvider
    assert StripeProvider.name == "stripe" and StripeProvider.body_kind == "json"


def test_published_vector() -> None:
    header = f"t={VECTOR_T},v1={VECTOR_V1}"
    assert sign_stripe(VECTOR_BODY, VECTOR_SECRET, VECTOR_T)["stripe-signature"] == header
    assert v1_of(VECTOR_BODY, VECTOR_SECRET, VECTOR_T) == VECTOR_V1
    p = provider(VECTOR_SECRET)
    for now in (VECTOR_T, VECTOR_T + 10, VECTOR_T + 300, VECTOR_T - 300):
        p.verify(VECTOR_BODY, {"stripe-signature": header}, now=now)
    refuse(p, VECTOR_BODY, header, TimestampOutOfTolerance, now=VECTOR_T + 301)
    refuse(p, VECTOR_BODY + b"\n", header, SignatureMismatch, now=VECTOR_T)


@pytest.mark.parametrize("name", FIXTURES)
def test_stripe_signed_fixtures_verify_and_carry_their_event_id(name: str) -> None:
    body = fixture(f"stripe/{name}")
    headers = sign_stripe(body, SECRET, T)
    provider().verify(body, headers, now=T + 1)
    # the stripe package accepts exactly what we accept
    assert stripe.WebhookSignature.verify_header(body, headers["stripe-signature"], SECRET)
    webhook = Webhook(source="stripe", provider="stripe", body=body, headers=headers)
    provider().check_payload(webhook)
    assert provider().delivery_id(webhook) == json.loads(body)["id"]


def test_thin_event_fixture_is_a_v2_notification() -> None:
    event = json.loads(fixture("stripe/thin.meter_error.json"))
    assert event["object"] == "v2.core.event"
    assert isinstance(event["created"], str) and event["created"].endswith("Z")
    assert event["related_object"]["type"] == "billing.meter"


def test_any_configured_secret_may_match() -> None:
    body = fixture("stripe/customer.created.json")
    old_only = sign_stripe(body, "whsec_old", T)
    provider("whsec_new", "whsec_old").verify(body, old_only, now=T)
    provider("whsec_old", "whsec_new").verify(body, old_only, now=T)
    refuse(provider("whsec_new"), body, old_only["stripe-signature"], SignatureMismatch, now=T)


def test_rolling_secret_header_with_two_v1_matches_either_secret() -> None:
    body = fixture("stripe/invoice.paid.json")
    header = sign_stripe(body, ["whsec_new", "whsec_old"], T)["stripe-signature"]
    assert header == f"t={T},v1={v1_of(body, 'whsec_new', T)},v1={v1_of(body, 'whsec_old', T)}"
    provider("whsec_new").verify(body, {"stripe-signature": header}, now=T)
    provider("whsec_old").verify(body, {"stripe-signature": header}, now=T)
    refuse(provider("whsec_other"), body, header, SignatureMismatch, now=T)


def test_a_later_v1_may_match_when_an_earlier_one_does_not() -> None:
    body = fixture("stripe/customer.created.json")
    header = f"t={T},v1={'0' * 64},v1={'f' * 64},v1={v1_of(body, SECRET, T)}"
    provider().verify(body, {"stripe-signature": header}, now=T)


def test_test_mode_fake_v0_is_ignored_beside_a_good_v1() -> None:
    body = fixture("stripe/checkout.session.completed.json")
    header = sign_stripe(body, SECRET, T)["stripe-signature"]
    fake_v0 = "6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"
    provider().verify(body, {"stripe-signature": f"{header},v0={fake_v0}"}, now=T)


def test_v0_is_never_a_signature() -> None:
    body = fixture("stripe/customer.created.json")
    good = v1_of(body, SECRET, T)
    # only v0, carrying the correct HMAC: refused (a downgrade), and stripe refuses it too
    error = refuse(provider(), body, f"t={T},v0={good}", MalformedSignature, now=T)
    assert "v1" in error.reason
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body, f"t={T},v0={good}", SECRET)
    # a correct v0 cannot rescue a wrong v1
    refuse(provider(), body, f"t={T},v1={'0' * 64},v0={good}", SignatureMismatch, now=T)


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_header(header: str | None) -> None:
    refuse(provider(), b"{}", header, MissingSignature, now=T)


GOOD_V1 = v1_of(b"{}", SECRET, T)


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        f"v1={GOOD_V1}",  # no t
        f"t=,v1={GOOD_V1}",
        f"t,v1={GOOD_V1}",
        f"t=abc,v1={GOOD_V1}",
        f"t={T}.5,v1={GOOD_V1}",
        f"t=-{T},v1={GOOD_V1}",
        f"t=+{T},v1={GOOD_V1}",  # int() would accept it
        f"t= {T},v1={GOOD_V1}",  # int() would accept it
        f"t={T:_},v1={GOOD_V1}",  # int() would accept "1_700_000_000"
        "t=\u0661\u0662\u0663,v1=" + GOOD_V1,  # Arabic-Indic digits: isdigit() but not ASCII
        f"t={'9' * 13},v1={GOOD_V1}",  # not a plausible Unix time
        f"t={'9' * 5000},v1={GOOD_V1}",  # int() raises ValueError past 4300 digits
        f"t={T},t={T},v1={GOOD_V1}",
        f"t={T},v1=é",  # hmac.compare_digest raises TypeError on non-ASCII str
        f"t={T}\x00,v1={GOOD_V1}",
        f"t={T}",  # no v1 at all
        f"t={T},v1",  # stripe: "Unable to extract timestamp and signatures"
        f"t={T},v2={GOOD_V1}",
    ],
)
def test_malformed_headers_raise_malformed_signature(header: str) -> None:
    refuse(provider(), b"{}", header, MalformedSignature, now=T)


def test_second_timestamp_cannot_refresh_an_old_signature() -> None:
    body = fixture("stripe/customer.created.json")
    old = sign_stripe(body, SECRET, T)["stripe-signature"]
    later = T + 3600
    refuse(provider(), body, f"{old},t={later}", MalformedSignature, now=later)
    refuse(provider(), body, f"t={later},{old}", MalformedSignature, now=later)
    refuse(provider(), body, old, TimestampOutOfTolerance, now=later)


def test_parse_header_returns_the_signed_timestamp() -> None:
    assert parse_header(f"t={T},v1=ab,v0=cd") == T
    assert parse_header(f"v1=ab,t={T}") == T
    assert parse_header("t=0012345,v1=ab") == 12345  # what stripe signs: "%d" % int(t)


def test_wrong_secret_and_tampered_body() -> None:
    body = fixture("stripe/invoice.paid.json")
    header = sign_stripe(body, SECRET, T)["stripe-signature"]
    refuse(provider("whsec_wrong"), body, header, SignatureMismatch, now=T)
    tampered = body.replace(b'"amount_paid": 2000', b'"amount_paid": 2}')
    assert tampered != body
    refuse(provider(), tampered, header, SignatureMismatch, now=T)
    refuse(provider(), body + b" ", header, SignatureMismatch, now=T)
    # signed for another timestamp: the same v1 under a different t does not match
    refuse(provider(), body, header.replace(f"t={T}", f"t={T + 1}"), SignatureMismatch, now=T)


def test_signature_is_checked_before_the_timestamp() -> None:
    body = b'{"id": "evt_1"}'
    refuse(provider(), body, f"t={T},v1={'0' * 64}", SignatureMismatch, now=T + 10_000)


def test_non_utf8_body_is_refused_as_unsigned() -> None:
    error = refuse(provider(), b"\xff\xfe{}", f"t={T},v1={'0' * 64}", SignatureMismatch, now=T)
    assert "UTF-8" in error.reason


def test_old_timestamp_refused() -> None:
    body = fixture("stripe/customer.created.json")
    headers = sign_stripe(body, SECRET, T)
    provider().verify(body, headers, now=T + 300)
    refuse(provider(), body, headers["stripe-signature"], TimestampOutOfTolerance, now=T + 301)
    refuse(provider(), body, headers["stripe-signature"], TimestampOutOfTolerance, now=T + 86_400)


def test_future_timestamp_refused() -> None:
    body = fixture("stripe/customer.created.json")
    headers = sign_stripe(body, SECRET, T)
    provider().verify(body, headers, now=T - 300)
    refuse(provider(), body, headers["stripe-signature"], TimestampOutOfTolerance, now=T - 301)


def test_stripe_package_alone_would_accept_the_future() -> None:
    """Why the gateway bounds the future itself: stripe-python only bounds the past."""
    body = fixture("stripe/customer.created.json")
    ahead = int(time.time()) + 3600
    header = sign_stripe(body, SECRET, ahead)["stripe-signature"]
    assert stripe.WebhookSignature.verify_header(body, header, SECRET, tolerance=300)
    refuse(provider(), body, header, TimestampOutOfTolerance, now=ahead - 3600)


def test_custom_tolerance() -> None:
    body = fixture("stripe/invoice.paid.json")
    headers = sign_stripe(body, SECRET, T)
    provider(tolerance=600).verify(body, headers, now=T + 599)
    provider(tolerance=600).verify(body, headers, now=T - 600)
    header = headers["stripe-signature"]
    refuse(provider(tolerance=600), body, header, TimestampOutOfTolerance, now=T + 601)


@pytest.mark.parametrize("tolerance", [0, None])
def test_tolerance_zero_or_none_disables_the_timestamp_check(tolerance: int | None) -> None:
    body = fixture("stripe/customer.created.json")
    headers = sign_stripe(body, SECRET, T)
    for now in (T + 10**9, T - 10**9, 0):
        provider(tolerance=tolerance).verify(body, headers, now=now)
    # ... but never the signature check
    header = headers["stripe-signature"]
    refuse(provider(tolerance=tolerance), body + b" ", header, SignatureMismatch, now=T)


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        (f"t={T},v1={'0' * 64}", SignatureMismatch),
        (f"t={T},v0={'0' * 64}", MalformedSignature),
        ("garbage", MalformedSignature),
        (f"t={T},v1", MalformedSignature),
        ("", MissingSignature),
    ],
)
def test_refusal_mapping_pins_the_stripe_package_messages(
    header: str, kind: type[VerificationError]
) -> None:
    """If a stripe upgrade rewords its errors, this fails before the mapping silently degrades."""
    with pytest.raises(stripe.SignatureVerificationError) as info:
        stripe.WebhookSignature.verify_header(b"{}", header, SECRET, tolerance=None)
    refusal = refusal_for(info.value)
    assert type(refusal) is kind


def test_unknown_stripe_refusal_is_a_mismatch() -> None:
    message, header = "Something new went wrong", "t=1,v1=00"
    error = stripe.SignatureVerificationError(message, header)  # type: ignore[no-untyped-call]
    assert type(refusal_for(error)) is SignatureMismatch


def test_blank_secret_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        StripeProvider(["whsec_ok", "  "])
    with pytest.raises(ValueError, match="at least one secret"):
        StripeProvider([])


def test_delivery_id_and_payload_shape() -> None:
    p = provider()
    no_id = Webhook(source="stripe", provider="stripe", body=b'{"object": "event"}')
    assert p.delivery_id(no_id) is None
    numeric = Webhook(source="stripe", provider="stripe", body=b'{"id": 42}')
    assert p.delivery_id(numeric) is None
    with pytest.raises(PayloadError):
        p.check_payload(Webhook(source="stripe", provider="stripe", body=b'["evt_1"]'))
    with pytest.raises(PayloadError):
        p.check_payload(Webhook(source="stripe", provider="stripe", body=b"id=evt_1"))
