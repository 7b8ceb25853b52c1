"""``twitch``: EventSub messages signed as Twitch's guide computes them (Twitch publishes no
PyPI or npm verifier): HMAC-SHA256(secret, message id + timestamp + raw body), hex, ``sha256=``.
https://dev.twitch.tv/docs/eventsub/handling-webhook-events/#verifying-the-event-message"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

import gateway
from gateway.config import config_from_env
from gateway.providers import (
    MalformedSignature,
    MissingSignature,
    SignatureMismatch,
    TimestampOutOfTolerance,
    get_provider,
)
from gateway.webhook import PayloadError, Webhook
from tests.provider_support import refused as refused_by
from tests.server import run_gateway
from transforms.twitch import twitch as twitch_transform

BODY = (Path(gateway.__file__).parent / "samples" / "twitch" / "channel.follow.json").read_bytes()
SECRET = "s3cRe7-eventsub-0123"
NOW = 1_714_557_600
MESSAGE_ID = "befa7b53-d79d-478f-86b9-120f112b044e"


def stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"


def twitch_headers(
    body: bytes, at: float, kind: str = "notification", secret: str = SECRET,
    message_id: str = MESSAGE_ID,
) -> dict[str, str]:  # fmt: skip
    ts = stamp(at)
    digest = hmac.new(secret.encode(), (message_id + ts).encode() + body, hashlib.sha256)
    return {"twitch-eventsub-message-id": message_id, "twitch-eventsub-message-timestamp": ts,
            "twitch-eventsub-message-signature": "sha256=" + digest.hexdigest(),
            "twitch-eventsub-message-type": kind, "twitch-eventsub-message-retry": "0",
            "twitch-eventsub-subscription-type": "channel.follow",
            "twitch-eventsub-subscription-version": "2",
            "content-type": "application/json"}  # fmt: skip


def refused(body: bytes, headers: dict[str, str], now: float = NOW, secret: str = SECRET) -> type:
    return refused_by(get_provider("twitch")([secret], 600, {}), body, headers, now)


def test_signature_broken_one_way_at_a_time_with_twitchs_ten_minutes() -> None:
    good = twitch_headers(BODY, NOW)
    window = get_provider("twitch").default_tolerance
    assert window == 600  # a source without tolerance gets Twitch's 10 minutes
    provider = get_provider("twitch")([SECRET], window, {})
    provider.verify(BODY, good, now=NOW)
    provider.verify(BODY, good, now=NOW + 599)
    assert refused(BODY + b" ", good) is SignatureMismatch  # body
    later = {**good, "twitch-eventsub-message-timestamp": stamp(NOW + 1)}
    assert refused(BODY, later) is SignatureMismatch  # timestamp
    other_id = {**good, "twitch-eventsub-message-id": "another"}
    assert refused(BODY, other_id) is SignatureMismatch  # message id
    bad = {**good, "twitch-eventsub-message-signature": "sha256=" + "0" * 64}
    assert refused(BODY, bad) is SignatureMismatch  # signature
    assert refused(BODY, good, secret="another-secret") is SignatureMismatch  # key
    for skew in (-601, 601):
        assert refused(BODY, good, now=NOW + skew) is TimestampOutOfTolerance
    unprefixed = {**good, "twitch-eventsub-message-signature": "0" * 64}
    assert refused(BODY, unprefixed) is MalformedSignature
    no_ts = {k: v for k, v in good.items() if k != "twitch-eventsub-message-timestamp"}
    assert refused(BODY, no_ts) is MissingSignature
    no_id = {k: v for k, v in good.items() if k != "twitch-eventsub-message-id"}
    assert refused(BODY, no_id) is MissingSignature
    assert refused(BODY, {**good, "twitch-eventsub-message-timestamp": "yesterday"}) is (
        MalformedSignature
    )


def test_sign_matches_the_recipe_and_names_the_event() -> None:
    provider = get_provider("twitch")([SECRET], 600, {})
    headers = provider.sign(BODY, timestamp=NOW)
    assert headers["twitch-eventsub-message-timestamp"] == "2024-05-01T10:00:00.000000000Z"
    ts = headers["twitch-eventsub-message-timestamp"]
    content = (headers["twitch-eventsub-message-id"] + ts).encode() + BODY
    expected = hmac.new(SECRET.encode(), content, hashlib.sha256).hexdigest()
    assert headers["twitch-eventsub-message-signature"] == "sha256=" + expected
    provider.verify(BODY, headers, now=NOW)
    assert provider.event_headers("stream.online")["twitch-eventsub-subscription-type"] == (
        "stream.online"
    )
    cls = get_provider("twitch")
    assert cls.secret_problem(SECRET) is None
    assert "10 to 100" in str(cls.secret_problem("short"))


def test_verification_answered_after_verification_and_never_stored(tmp_path: Path) -> None:
    env = {"TWITCH_WEBHOOK_SECRET": SECRET, "GATEWAY_DATA_DIR": str(tmp_path)}
    config = config_from_env(env)
    config.forwarder.enabled = False
    challenge = json.dumps(
        {"challenge": "pogchamp-kappa-360noscope-vohiyo",
         "subscription": {**json.loads(BODY)["subscription"], "status":
                          "webhook_callback_verification_pending"}}
    ).encode()  # fmt: skip
    revocation = json.dumps(
        {"subscription": {**json.loads(BODY)["subscription"], "status": "authorization_revoked"}}
    ).encode()
    with run_gateway(config, env) as gw, httpx.Client(base_url=gw.url, timeout=10) as client:
        now = datetime.now(UTC).timestamp()
        answer = client.post(
            "/webhooks/twitch",
            content=challenge,
            headers=twitch_headers(challenge, now, "webhook_callback_verification"),
        )
        assert (answer.status_code, answer.text) == (200, "pogchamp-kappa-360noscope-vohiyo")
        assert answer.headers["content-type"].startswith("text/plain")
        forged = twitch_headers(challenge, now, "webhook_callback_verification", "not-the-secret")
        assert client.post("/webhooks/twitch", content=challenge, headers=forged).status_code == 401
        event = client.post("/webhooks/twitch", content=BODY, headers=twitch_headers(BODY, now))
        assert (event.status_code, event.json()["events"]) == (200, 1)
        resent = client.post("/webhooks/twitch", content=BODY, headers=twitch_headers(BODY, now))
        assert resent.json()["duplicates"] == 1  # the same message id
        revoked = client.post(
            "/webhooks/twitch",
            content=revocation,
            headers=twitch_headers(revocation, now, "revocation", message_id="rev-1"),
        )
        assert (revoked.status_code, revoked.json()["events"]) == (200, 1)
        unknown = twitch_headers(BODY, now, "mystery", message_id="m-2")
        assert client.post("/webhooks/twitch", content=BODY, headers=unknown).status_code == 400
        metrics = client.get("/metrics").text
        assert 'handshakes_total{provider="twitch",source="twitch"} 1.0' in metrics
        assert 'events_accepted_total{source="twitch"} 2.0' in metrics


def test_transform_notification_revocation_and_batch() -> None:
    headers = twitch_headers(BODY, NOW)
    event = twitch_transform(
        Webhook(source="twitch", provider="twitch", body=BODY, headers=headers)
    )
    assert not isinstance(event, list)
    assert (event.name, event.id, event.ts) == (
        "twitch/channel.follow", f"twitch-{MESSAGE_ID}", NOW * 1000
    )  # fmt: skip
    assert event.data["event"]["user_login"] == "cool_user"
    revoked = twitch_transform(
        Webhook(source="twitch", provider="twitch", body=BODY,
                headers={**headers, "twitch-eventsub-message-type": "revocation"})
    )  # fmt: skip
    assert not isinstance(revoked, list) and revoked.name == "twitch/subscription.revoked"
    batch = json.dumps(
        {"subscription": {"type": "drop.entitlement.grant"},
         "events": [{"id": "e-1", "data": {"benefit_id": "b"}}, {"id": "e-2", "data": {}}]}
    ).encode()  # fmt: skip
    grants = twitch_transform(
        Webhook(source="twitch", provider="twitch", body=batch, headers=headers)
    )
    assert isinstance(grants, list)
    assert [(g.name, g.id) for g in grants] == [
        ("twitch/drop.entitlement.grant", "twitch-e-1"),
        ("twitch/drop.entitlement.grant", "twitch-e-2"),
    ]
    with pytest.raises(PayloadError):
        get_provider("twitch")([SECRET], 300, {}).check_payload(
            Webhook(source="twitch", provider="twitch", body=b'{"event": {}}', headers=headers)
        )
