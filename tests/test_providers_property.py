"""Random headers and bodies at every verifier: only VerificationErrors, never a forgery accepted.

Beside the refusals, genuine requests built from random bodies and timestamps must be accepted
exactly when the timestamp is inside the window, so the verifiers cannot pass these properties by
refusing everything.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.providers import (
    MalformedSignature,
    MissingSignature,
    Provider,
    SignatureMismatch,
    TimestampOutOfTolerance,
    VerificationError,
    get_provider,
)
from gateway.webhook import PayloadError, Webhook
from tests.signing import sign_intercom, sign_slack, sign_stripe

NOW = 1_700_000_000
TOLERANCE = 300
SECRETS = {
    "stripe": ["whsec_property_one", "whsec_property_two"],
    "slack": ["slack_property_one", "slack_property_two"],
    "intercom": ["intercom_property_one", "intercom_property_two"],
}
REFUSALS = {MissingSignature, MalformedSignature, SignatureMismatch, TimestampOutOfTolerance}
REAL_HEADERS = [
    "stripe-signature",
    "x-slack-request-timestamp",
    "x-slack-signature",
    "x-hub-signature",
]
PROPERTY = settings(max_examples=200, deadline=None)

hex_strings = st.text("0123456789abcdefABCDEF", max_size=70)
timestamps = st.one_of(
    st.integers(NOW - 2 * TOLERANCE, NOW + 2 * TOLERANCE),
    st.integers(-(10**6), 10**20),
).map(str)
stripe_items = st.builds(
    lambda key, value: f"{key}={value}",
    st.sampled_from(["t", "v1", "v0", "v2", " t", "T", "t ", ""]),
    st.one_of(timestamps, hex_strings, st.text(max_size=12)),
)
stripe_like = st.builds(
    lambda ts, sigs, extra: ",".join([f"t={ts}", *(f"v1={s}" for s in sigs), *extra]),
    timestamps,
    st.lists(st.text("0123456789abcdef", min_size=64, max_size=64), max_size=3),
    st.lists(stripe_items, max_size=2),
)
header_values = st.one_of(
    st.text(max_size=200),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=200),
    st.lists(st.one_of(stripe_items, st.text(max_size=8)), max_size=6).map(",".join),
    stripe_like,
    timestamps,
    st.builds(lambda h: f"v0={h}", hex_strings),
    st.builds(lambda h: f"sha1={h}", hex_strings),
    st.builds(lambda h: f"sha1={h}", st.text("0123456789abcdef", min_size=40, max_size=40)),
)
header_dicts = st.builds(
    lambda real, other: {**other, **real},
    st.fixed_dictionaries({}, optional=dict.fromkeys(REAL_HEADERS, header_values)),
    st.dictionaries(st.text(min_size=1, max_size=24).map(str.lower), header_values, max_size=3),
)
bodies = st.one_of(
    st.binary(max_size=1024),
    st.text(max_size=512).map(str.encode),
    st.sampled_from(
        [
            b"",
            b"{}",
            b'{"id": "evt_1", "object": "event"}',
            b'{"type": "url_verification", "challenge": "c"}',
            b"ssl_check=1&token=t",
            b"payload=%7B%22type%22%3A%22block_actions%22%7D",
            b'{"topic": "ping", "id": null}',
        ]
    ),
)


def provider(name: str) -> Provider:
    return get_provider(name)(SECRETS[name], TOLERANCE)


def assert_refused(p: Provider, body: bytes, headers: dict[str, str], now: float) -> None:
    with pytest.raises(VerificationError) as info:
        p.verify(body, headers, now=now)
    assert type(info.value) in REFUSALS
    assert info.value.status_code == 401 and info.value.reason
    for secret in p.secrets:
        assert secret not in info.value.reason


@pytest.mark.parametrize("name", ["stripe", "slack", "intercom"])
def test_random_requests_only_raise_verification_errors_and_never_pass(name: str) -> None:
    p = provider(name)

    @PROPERTY
    @given(headers=header_dicts, body=bodies, skew=st.integers(-TOLERANCE, TOLERANCE))
    def check(headers: dict[str, str], body: bytes, skew: int) -> None:
        assert_refused(p, body, headers, now=NOW + skew)

    check()


@pytest.mark.parametrize("name", ["stripe", "slack", "intercom"])
def test_genuine_header_with_a_random_signature_is_refused(name: str) -> None:
    """Everything right but the signature: the header shapes a forger would actually send."""
    p = provider(name)

    @PROPERTY
    @given(
        body=st.text(max_size=512).map(str.encode),
        forged=st.text("0123456789abcdef", min_size=1, max_size=80),
        skew=st.integers(-TOLERANCE, TOLERANCE),
    )
    def check(body: bytes, forged: str, skew: int) -> None:
        ts = NOW + skew
        headers = {
            "stripe-signature": f"t={ts},v1={forged},v0={forged}",
            "x-slack-request-timestamp": str(ts),
            "x-slack-signature": f"v0={forged}",
            "x-hub-signature": f"sha1={forged}",
        }
        assert_refused(p, body, headers, now=NOW)

    check()


def signed(name: str, body: bytes, secret: str, ts: int) -> dict[str, str]:
    if name == "stripe":
        return sign_stripe(body, secret, ts)
    if name == "slack":
        return sign_slack(body, secret, ts)
    return sign_intercom(body, secret)


@pytest.mark.parametrize("name", ["stripe", "slack", "intercom"])
def test_genuine_requests_pass_inside_the_window_and_only_there(name: str) -> None:
    p = provider(name)

    @PROPERTY
    @given(
        body=st.text(max_size=512).map(str.encode),
        secret=st.sampled_from(SECRETS[name]),
        ts=st.integers(NOW - 3 * TOLERANCE, NOW + 3 * TOLERANCE),
    )
    def check(body: bytes, secret: str, ts: int) -> None:
        headers = signed(name, body, secret, ts)
        if name == "intercom" or abs(NOW - ts) <= TOLERANCE:
            p.verify(body, headers, now=NOW)
        else:
            with pytest.raises(TimestampOutOfTolerance):
                p.verify(body, headers, now=NOW)

    check()


@pytest.mark.parametrize("name", ["stripe", "slack", "intercom"])
def test_any_change_to_a_signed_body_is_refused(name: str) -> None:
    p = provider(name)

    @PROPERTY
    @given(body=st.text(min_size=1, max_size=512).map(str.encode), data=st.data())
    def check(body: bytes, data: st.DataObject) -> None:
        headers = signed(name, body, SECRETS[name][0], NOW)
        index = data.draw(st.integers(0, len(body) - 1))
        flip = data.draw(st.integers(1, 127))
        tampered = body[:index] + bytes([body[index] ^ flip]) + body[index + 1 :]
        assert_refused(p, tampered, headers, now=NOW)

    check()


def test_slack_raw_bytes_round_trip() -> None:
    """Slack signs raw bytes; the verifier must accept any body signed that way, UTF-8 or not."""
    p = provider("slack")
    secret = SECRETS["slack"][1]

    @PROPERTY
    @given(body=st.binary(max_size=1024))
    def check(body: bytes) -> None:
        base = f"v0:{NOW}:".encode() + body
        digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
        headers = {"x-slack-request-timestamp": str(NOW), "x-slack-signature": f"v0={digest}"}
        p.verify(body, headers, now=NOW)

    check()


@pytest.mark.parametrize("name", ["stripe", "slack", "intercom"])
def test_payload_hooks_raise_only_payload_errors(name: str) -> None:
    """After verification the receiver calls these on the body: PayloadError or a result."""
    p = provider(name)

    @PROPERTY
    @given(body=bodies, headers=header_dicts)
    def check(body: bytes, headers: dict[str, str]) -> None:
        reply = p.pre_verify_reply(body, headers)
        assert reply is None or (name == "slack" and reply.status == 200)
        webhook = Webhook(source=name, provider=name, body=body, headers=headers)
        try:
            p.check_payload(webhook)
        except PayloadError:
            return
        delivery_id = p.delivery_id(webhook)
        assert delivery_id is None or (isinstance(delivery_id, str) and delivery_id)
        handshake = p.handshake(webhook)
        assert handshake is None or handshake.status == 200

    check()
