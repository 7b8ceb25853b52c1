"""``paddle``: Paddle Billing signatures checked with ``paddle-python-sdk``'s own
``paddle_billing.Notifications`` (``Verifier``, ``PaddleSignature``, ``Secret``): its published
vector (tests/Unit/Notification/test_Verifier.py in PaddleHQ/paddle-python-sdk: two ``h1``, one
a placeholder, three rotated secrets), the gateway's ``sign()`` output verified by the SDK, and the
SDK's 5 s drift window cross-checked against the provider's tolerance."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from paddle_billing.Entities.Notifications import NotificationEvent
from paddle_billing.Notifications import PaddleSignature, Secret, Verifier

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
from transforms.paddle import paddle as paddle_transform

BODY = read_sample("paddle", "transaction.completed")
SECRET = "pdl_ntfset_01hxa3kqn1z8w6v4t2r0p8n6m4_h7Kq2vXz9PbWm4Ry8TcN3sLd6FgJ1aE5"
NOW = 1_714_557_600
#: the SDK's published vector
VECTOR_HEADER = (
    "ts=1696195954;h1=dummy;h1=d96299976a6eb066f484d7fde011ac56fc32b38fc9940bc419d6e537fdc6ef02"
)
VECTOR_SECRETS = [
    "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_TjIG2BXbm83HPXqNfziwe506sBEdqL/4",
    "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_vB/yIOnTOCWIvpBadM5jzBZPHc7OmdSo",
    "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_WvRO0eL4Bj9rgYYIBZY6wZhG4EHy9jzh",
]


@dataclass
class SdkRequest:
    """What ``Verifier.verify`` reads: the raw ``body`` and ``headers.get``."""

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def sdk_verifies(body: bytes, header: str, secrets: list[str], drift: int = 300) -> bool:
    request = SdkRequest(body, {"Paddle-Signature": header})
    try:
        return bool(Verifier(drift).verify(request, [Secret(s) for s in secrets]))
    except ConnectionRefusedError:  # the SDK's answer when no secret matches
        return False


def paddle_header(body: bytes, ts: int, secret: str = SECRET) -> dict[str, str]:
    digest = PaddleSignature.calculate_hmac(secret, f"{ts}:".encode() + body).hexdigest()
    return {"paddle-signature": f"ts={ts};h1={digest}", "content-type": "application/json"}


def provider(*secrets: str, tolerance: int = 300) -> Provider:
    return get_provider("paddle")(list(secrets) or [SECRET], tolerance, {})


def test_the_sdks_published_vector() -> None:
    assert sdk_verifies(b"hello-world", VECTOR_HEADER, VECTOR_SECRETS, drift=0)
    headers = {"paddle-signature": VECTOR_HEADER}
    rotated = provider(*VECTOR_SECRETS)
    rotated.verify(b"hello-world", headers, now=1696195954)  # h1=dummy is skipped, not fatal
    assert refused(provider(*VECTOR_SECRETS[:2]), b"hello-world", headers, 1696195954) is (
        SignatureMismatch
    )


def test_the_sdk_verifies_the_gateways_signature() -> None:
    now = int(time.time())
    ours = provider().sign(BODY, timestamp=now)
    assert ours["paddle-signature"].startswith(f"ts={now};h1=")
    assert sdk_verifies(BODY, ours["paddle-signature"], [SECRET])
    assert not sdk_verifies(BODY + b" ", ours["paddle-signature"], [SECRET])
    assert not sdk_verifies(BODY, ours["paddle-signature"], ["pdl_ntfset_other"])
    provider().verify(BODY, ours, now=now)
    event = NotificationEvent.from_dict(json.loads(BODY))  # the sample is a Paddle event
    assert (event.event_id, event.event_type) == (
        "evt_01hxa3q9d7n4k2m8b6v5c1x0zr",
        "transaction.completed",
    )


def test_the_drift_window_agrees_with_the_sdk() -> None:
    assert Verifier().maximum_variance == 5  # the SDK's default, in both directions
    now = int(time.time())
    for skew in (-60, 60):
        header = paddle_header(BODY, now + skew)
        assert not sdk_verifies(BODY, header["paddle-signature"], [SECRET], drift=5)
        assert sdk_verifies(BODY, header["paddle-signature"], [SECRET], drift=300)
        assert refused(provider(tolerance=5), BODY, header, now=now) is TimestampOutOfTolerance
        provider(tolerance=300).verify(BODY, header, now=now)


def test_broken_one_way_at_a_time() -> None:
    good = paddle_header(BODY, NOW)
    p = provider()
    p.verify(BODY, good, now=NOW)
    provider("pdl_ntfset_old", SECRET).verify(BODY, good, now=NOW)
    assert refused(p, BODY.replace(b"16331", b"16332", 1), good, NOW) is SignatureMismatch  # body
    digest = good["paddle-signature"].split("h1=")[1]
    assert (
        refused(p, BODY, {"paddle-signature": f"ts={NOW + 1};h1={digest}"}, NOW)
        is SignatureMismatch
    )
    forged = {"paddle-signature": f"ts={NOW};h1={'0' * 64}"}
    assert refused(p, BODY, forged, NOW) is SignatureMismatch  # signature
    assert (
        refused(p, BODY, paddle_header(BODY, NOW, "pdl_ntfset_x"), NOW) is SignatureMismatch
    )  # key
    two = {"paddle-signature": f"ts={NOW};h1={'0' * 64};h1={digest}"}  # rotation: either h1
    p.verify(BODY, two, now=NOW)
    for skew in (-301, 301):
        assert refused(p, BODY, good, now=NOW + skew) is TimestampOutOfTolerance
    assert refused(p, BODY, {}, NOW) is MissingSignature
    assert refused(p, BODY, {"paddle-signature": f"h1={digest}"}, NOW) is MalformedSignature
    assert refused(p, BODY, {"paddle-signature": f"ts={NOW}"}, NOW) is MalformedSignature
    assert refused(p, BODY, {"paddle-signature": f"ts=soon;h1={digest}"}, NOW) is MalformedSignature


def test_secret_format() -> None:
    assert get_provider("paddle").secret_problem(SECRET) is None
    problem = get_provider("paddle").secret_problem("whsec_abc")
    assert problem is not None and "pdl_ntfset_" in problem and "whsec_abc" not in problem


def test_transform() -> None:
    event = paddle_transform(Webhook(source="paddle", provider="paddle", body=BODY))
    assert event.name == "paddle/transaction.completed"
    assert event.id == "paddle-evt_01hxa3q9d7n4k2m8b6v5c1x0zr"
    assert event.ts == 1714557600123
    assert event.data["data"]["status"] == "completed"


def test_zero_config_and_send_over_a_real_socket(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def headers() -> dict[str, str]:  # signed once the gateway is up: Paddle allows 5 s
        return paddle_header(BODY, int(time.time()))

    zero_config_round_trip(
        tmp_path, capsys, "paddle", SECRET, BODY, headers, "transaction.completed"
    )
