"""``zoom``: signatures and the url_validation answer computed as Zoom's webhook guide and its
sample app (zoom/webhook-sample) compute them: Zoom publishes no PyPI or npm verifier."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path

import httpx

import gateway
from gateway.config import config_from_env
from gateway.providers import (
    MalformedSignature,
    SignatureMismatch,
    TimestampOutOfTolerance,
    get_provider,
)
from gateway.webhook import Webhook
from tests.provider_support import refused as refused_by
from tests.server import run_gateway
from transforms.zoom import zoom as zoom_transform

BODY = (Path(gateway.__file__).parent / "samples" / "zoom" / "meeting.started.json").read_bytes()
SECRET = "6sp8Ze0dTduD5X3iLqmYmQ"
NOW = 1_714_557_600


def zoom_headers(body: bytes, ts: int, secret: str = SECRET) -> dict[str, str]:
    message = f"v0:{ts}:".encode() + body
    signature = "v0=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return {"x-zm-signature": signature, "x-zm-request-timestamp": str(ts),
            "content-type": "application/json"}  # fmt: skip


def refused(body: bytes, headers: dict[str, str], now: float = NOW, secret: str = SECRET) -> type:
    return refused_by(get_provider("zoom")([secret], 300, {}), body, headers, now)


def test_signature_broken_one_way_at_a_time() -> None:
    good = zoom_headers(BODY, NOW)
    get_provider("zoom")([SECRET], 300, {}).verify(BODY, good, now=NOW)
    assert get_provider("zoom")([SECRET], 300, {}).sign(BODY, timestamp=NOW) == {
        k: v for k, v in good.items() if k.startswith("x-zm")
    }
    assert refused(BODY + b" ", good) is SignatureMismatch  # body
    assert refused(BODY, {**good, "x-zm-request-timestamp": str(NOW + 1)}) is SignatureMismatch
    assert refused(BODY, {**good, "x-zm-signature": "v0=" + "0" * 64}) is SignatureMismatch
    assert refused(BODY, good, secret="another") is SignatureMismatch  # key
    for skew in (-301, 301):
        assert refused(BODY, good, now=NOW + skew) is TimestampOutOfTolerance
    assert refused(BODY, {**good, "x-zm-signature": "v1=abc"}) is MalformedSignature


def test_url_validation_is_answered_after_verification_and_never_stored(tmp_path: Path) -> None:
    env = {"ZOOM_WEBHOOK_SECRET": SECRET, "GATEWAY_DATA_DIR": str(tmp_path)}
    config = config_from_env(env)
    config.forwarder.enabled = False
    challenge = {"payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"},
                 "event_ts": 1654503849680, "event": "endpoint.url_validation"}  # fmt: skip
    validation = json.dumps(challenge).encode()
    with run_gateway(config, env) as gw, httpx.Client(base_url=gw.url, timeout=10) as client:
        now = int(time.time())
        answer = client.post(
            "/webhooks/zoom", content=validation, headers=zoom_headers(validation, now)
        )
        expected = hmac.new(SECRET.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()
        assert answer.status_code == 200
        assert answer.json() == {"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": expected}
        unsigned = client.post("/webhooks/zoom", content=validation)
        assert unsigned.status_code == 401  # a challenge is answered only when signed
        event = client.post("/webhooks/zoom", content=BODY, headers=zoom_headers(BODY, now))
        assert (event.status_code, event.json()["events"]) == (200, 1)
        metrics = client.get("/metrics").text
        assert 'handshakes_total{provider="zoom",source="zoom"} 1.0' in metrics
        assert 'events_accepted_total{source="zoom"} 1.0' in metrics


def test_transform() -> None:
    event = zoom_transform(Webhook(source="zoom", provider="zoom", body=BODY))
    assert event.name == "zoom/meeting.started"
    assert event.id == "zoom-meeting.started-1714557600123-4444AAAiAAAAAiAiAiiAii=="
    assert event.ts == 1714557600123
