"""``calendly``: Calendly publishes no verifier library (PyPI or npm), so requests are signed as
its guide computes them, https://developer.calendly.com/api-docs/overview/webhooks/webhook-signatures:
split ``Calendly-Webhook-Signature`` on ``,`` into ``t`` (Unix seconds) and ``v1``; ``v1`` is the
hex HMAC-SHA256 of ``t + "." + raw body`` keyed with the webhook signing key; signatures older
than three minutes are refused."""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path

import pytest

from gateway.commands.send import read_sample
from gateway.providers import (
    MalformedSignature,
    MissingSignature,
    Provider,
    SignatureMismatch,
    TimestampOutOfTolerance,
    get_provider,
)
from gateway.webhook import Webhook
from tests.provider_support import refused, zero_config_round_trip
from transforms.calendly import calendly as calendly_transform

BODY = read_sample("calendly", "invitee.created")
KEY = "3b4f9c1e7a2d8f60b5c4e3d2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2"
NOW = 1_714_557_600
URI = "https://api.calendly.com/scheduled_events/GBGBDCAADAEDCRZ2/invitees/BBBBBBBBBBBBBBBB"


def calendly_header(body: bytes, t: int, key: str = KEY) -> dict[str, str]:
    digest = hmac.new(key.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"calendly-webhook-signature": f"t={t},v1={digest}", "content-type": "application/json"}


def provider(*keys: str, tolerance: int = 300) -> Provider:
    return get_provider("calendly")(list(keys) or [KEY], tolerance, {})


def test_signed_as_the_guide_signs_and_sign_matches_it() -> None:
    good = calendly_header(BODY, NOW)
    provider().verify(BODY, good, now=NOW)
    assert provider().sign(BODY, timestamp=NOW) == {
        "calendly-webhook-signature": good["calendly-webhook-signature"]
    }
    provider("rotated-out", KEY).verify(BODY, good, now=NOW)
    spaced = {"calendly-webhook-signature": good["calendly-webhook-signature"].replace(",", ", ")}
    provider().verify(BODY, spaced, now=NOW)


def test_three_minutes_as_the_guide_says() -> None:
    strict = provider(tolerance=180)
    strict.verify(BODY, calendly_header(BODY, NOW - 180), now=NOW)
    late = calendly_header(BODY, NOW - 181)
    assert refused(strict, BODY, late, NOW) is TimestampOutOfTolerance
    early = calendly_header(BODY, NOW + 181)  # the gateway refuses the future too
    assert refused(strict, BODY, early, NOW) is TimestampOutOfTolerance


def test_broken_one_way_at_a_time() -> None:
    good = calendly_header(BODY, NOW)
    p = provider()
    assert refused(p, BODY.replace(b"Jordan Lee", b"Jordan Lea"), good, NOW) is SignatureMismatch
    digest = good["calendly-webhook-signature"].split("v1=")[1]
    moved = {"calendly-webhook-signature": f"t={NOW + 1},v1={digest}"}
    assert refused(p, BODY, moved, NOW) is SignatureMismatch  # timestamp
    forged = {"calendly-webhook-signature": f"t={NOW},v1={'0' * 64}"}
    assert refused(p, BODY, forged, NOW) is SignatureMismatch  # signature
    assert refused(p, BODY, calendly_header(BODY, NOW, "another"), NOW) is SignatureMismatch
    for skew in (-301, 301):
        assert refused(p, BODY, good, now=NOW + skew) is TimestampOutOfTolerance
    assert refused(p, BODY, {}, NOW) is MissingSignature
    assert refused(p, BODY, {"calendly-webhook-signature": f"v1={digest}"}, NOW) is (
        MalformedSignature
    )
    assert refused(p, BODY, {"calendly-webhook-signature": f"t={NOW}"}, NOW) is MalformedSignature
    ms = calendly_header(BODY, NOW * 1000)  # milliseconds where seconds are due
    assert refused(p, BODY, ms, NOW) is TimestampOutOfTolerance


def test_transform_and_dedup_id() -> None:
    webhook = Webhook(source="calendly", provider="calendly", body=BODY)
    event = calendly_transform(webhook)
    assert event.name == "calendly/invitee.created"
    assert event.id == f"calendly-invitee.created-{URI}"
    assert event.ts == 1714557600123
    assert event.data["payload"]["email"] == "jordan@example.com"
    assert provider().delivery_id(webhook) == f"invitee.created-{URI}"
    canceled = BODY.replace(b'"event": "invitee.created"', b'"event": "invitee.canceled"')
    other = Webhook(source="calendly", provider="calendly", body=canceled)
    assert provider().delivery_id(other) == f"invitee.canceled-{URI}"  # not a duplicate
    assert calendly_transform(other).name == "calendly/invitee.canceled"
    assert get_provider("calendly").secret_problem(KEY) is None


def test_zero_config_and_send_over_a_real_socket(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # another event of the invitee than the sample's, so that sending the sample is not a duplicate
    canceled = BODY.replace(b'"event": "invitee.created"', b'"event": "invitee.canceled"')
    headers = calendly_header(canceled, int(time.time()))
    zero_config_round_trip(tmp_path, capsys, "calendly", KEY, canceled, headers, "invitee.created")
