"""``workos``: the gateway's signatures checked by the ``workos`` SDK's own webhook verifier
(``WorkOSClient(...).webhooks.verify_header`` / ``verify_event``), and the SDK's units (``t`` in
ms, 180 s both ways) cross-checked against the provider's. The SDK has no signer: the requests
the gateway must refuse are made as the SDK's ``verify_header`` recomputes them (HMAC-SHA256 of
``{t}.{body}``), and the SDK is shown to accept or refuse the same requests."""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path

import pytest
from workos import WorkOSClient
from workos.webhooks import Webhooks

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
from transforms.workos import workos as workos_transform

BODY = read_sample("workos", "dsync.user.created")
SECRET = "wh_secret_5nUq7tX2dWcV8bYe"
NOW = 1_714_557_600


def sdk() -> Webhooks:
    return WorkOSClient(api_key="sk_test_gateway", client_id="client_gateway").webhooks


def workos_header(body: bytes, t_ms: int, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), f"{t_ms}.".encode() + body, hashlib.sha256).hexdigest()
    return {"workos-signature": f"t={t_ms}, v1={digest}", "content-type": "application/json"}


def provider(*secrets: str, tolerance: int = 300) -> Provider:
    return get_provider("workos")(list(secrets) or [SECRET], tolerance, {})


def test_the_sdk_verifies_the_gateways_signature() -> None:
    now = int(time.time())
    ours = provider().sign(BODY, timestamp=now)
    assert ours["workos-signature"].startswith(f"t={now * 1000}, v1=")  # ms, ", " between pairs
    sdk().verify_header(event_body=BODY, event_signature=ours["workos-signature"], secret=SECRET)
    event = sdk().verify_event(
        event_body=BODY, event_signature=ours["workos-signature"], secret=SECRET
    )
    assert (event.id, event.event) == ("event_01GW9S1AQTY5JMQMX1D4Q2F0ZT", "dsync.user.created")
    with pytest.raises(ValueError, match="does not match"):
        sdk().verify_header(
            event_body=BODY + b" ", event_signature=ours["workos-signature"], secret=SECRET
        )
    provider().verify(BODY, ours, now=now)


def test_units_and_window_agree_with_the_sdk() -> None:
    now = int(time.time())
    accepted = workos_header(BODY, now * 1000 - 120_123)  # ms precision, 120 s old
    sdk().verify_header(
        event_body=BODY, event_signature=accepted["workos-signature"], secret=SECRET
    )
    provider(tolerance=180).verify(BODY, accepted, now=now)
    # past the SDK's 180 s in both directions, with a margin: the SDK reads the real clock later
    for skew_ms in (-185_000, 185_000):
        late = workos_header(BODY, now * 1000 + skew_ms)
        with pytest.raises(ValueError, match="tolerance"):
            sdk().verify_header(
                event_body=BODY, event_signature=late["workos-signature"], secret=SECRET
            )
        assert refused(provider(tolerance=180), BODY, late, now=now) is TimestampOutOfTolerance
    for edge_ms, inside in ((-180_000, True), (180_000, True), (-181_000, False), (181_000, False)):
        header = workos_header(BODY, now * 1000 + edge_ms)  # the gateway's own clock is given
        strict = provider(tolerance=180)
        if inside:
            strict.verify(BODY, header, now=now)
        else:
            assert refused(strict, BODY, header, now=now) is TimestampOutOfTolerance


def test_broken_one_way_at_a_time() -> None:
    t_ms = NOW * 1000 + 456
    good = workos_header(BODY, t_ms)
    provider().verify(BODY, good, now=NOW)
    provider("rotated-out", SECRET).verify(BODY, good, now=NOW)  # any configured secret
    p = provider()
    assert refused(p, BODY.replace(b"Marcelina", b"Marcelino"), good, NOW) is SignatureMismatch
    digest = good["workos-signature"].split("v1=")[1]
    moved = {"workos-signature": f"t={t_ms + 1}, v1={digest}"}
    assert refused(p, BODY, moved, NOW) is SignatureMismatch  # timestamp
    forged = {"workos-signature": f"t={t_ms}, v1={'0' * 64}"}
    assert refused(p, BODY, forged, NOW) is SignatureMismatch  # signature
    assert refused(p, BODY, workos_header(BODY, t_ms, "another"), NOW) is SignatureMismatch  # key
    for skew in (-301, 301):
        assert refused(p, BODY, good, now=NOW + skew) is TimestampOutOfTolerance
    seconds = workos_header(BODY, NOW)  # seconds where ms are due: 1970
    assert refused(p, BODY, seconds, NOW) is TimestampOutOfTolerance
    assert refused(p, BODY, {}, NOW) is MissingSignature
    assert refused(p, BODY, {"workos-signature": f"t={t_ms}"}, NOW) is MalformedSignature
    assert refused(p, BODY, {"workos-signature": f"v1={digest}"}, NOW) is MalformedSignature
    assert get_provider("workos").secret_problem(SECRET) is None


def test_transform() -> None:
    event = workos_transform(Webhook(source="workos", provider="workos", body=BODY))
    assert event.name == "workos/dsync.user.created"
    assert event.id == "workos-event_01GW9S1AQTY5JMQMX1D4Q2F0ZT"
    assert event.ts == 1714557600123
    assert event.data["data"]["email"] == "marcelina@example.com"


def test_zero_config_and_send_over_a_real_socket(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    headers = workos_header(BODY, int(time.time()) * 1000)
    zero_config_round_trip(tmp_path, capsys, "workos", SECRET, BODY, headers, "dsync.user.created")
