"""``mailgun``: the signature inside the body, checked against the official SDK's
``mailgun.security.SecurityGuard.verify_webhook`` (``mailgun`` on PyPI); the single-use token."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from mailgun.security import SecurityGuard

import gateway
from gateway.app import build_provider
from gateway.config import ConfigError, SourceConfig, config_from_env
from gateway.providers import (
    MalformedSignature,
    MissingSignature,
    SignatureMismatch,
    TimestampOutOfTolerance,
    get_provider,
)
from gateway.providers.mailgun import mailgun_hmac
from gateway.webhook import Webhook
from tests.provider_support import refused as refused_at_now
from tests.provider_support import zero_config_gateway
from transforms.mailgun import mailgun as mailgun_transform

SAMPLE = json.loads(
    (Path(gateway.__file__).parent / "samples" / "mailgun" / "delivered.json").read_bytes()
)
KEY = "3c4a2d9b7e1f0a8c6d5b4e3f2a1c0d9e-8b7a6c5d-4e3f2a1b"
TOKEN = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
NOW = 1_714_557_600


def signed(ts: int = NOW, token: str = TOKEN, key: str = KEY, **changes: object) -> bytes:
    """The sample signed as Mailgun's guide says: hex HMAC-SHA256 of timestamp + token."""
    block = {"token": token, "timestamp": str(ts), "signature": mailgun_hmac(key, str(ts), token)}
    return json.dumps({**SAMPLE, "signature": {**block, **changes}}).encode()


def refused(body: bytes, key: str = KEY) -> type:
    return refused_at_now(get_provider("mailgun")([key], 300, {}), body)


def test_the_sdk_accepts_what_the_gateway_accepts() -> None:
    provider = get_provider("mailgun")(["old-key", KEY], 300, {})
    body = signed()
    provider.verify(body, {}, now=NOW)
    block = json.loads(body)["signature"]
    assert SecurityGuard.verify_webhook(
        KEY, block["token"], block["timestamp"], block["signature"], max_age_seconds=0
    )
    resigned = json.loads(get_provider("mailgun")([KEY], 300, {}).sign_body(body))
    fresh = resigned["signature"]
    assert fresh["token"] != TOKEN and len(fresh["token"]) == 50
    assert SecurityGuard.verify_webhook(KEY, fresh["token"], fresh["timestamp"], fresh["signature"])
    assert resigned["event-data"] == SAMPLE["event-data"]
    assert provider.sign(body) == {}  # nothing travels in headers
    for legacy in (b"timestamp=1&token=t&signature=s", b"[]"):
        with pytest.raises(NotImplementedError, match="JSON object"):
            provider.sign_body(legacy)


def test_broken_one_way_at_a_time() -> None:
    good = json.loads(signed())["signature"]
    assert refused(signed(token=TOKEN[:-1] + "1", signature=good["signature"])) is SignatureMismatch
    assert refused(signed(ts=NOW + 1, signature=good["signature"])) is SignatureMismatch
    assert refused(signed(signature="0" * 64)) is SignatureMismatch
    assert refused(signed(), key="another-key") is SignatureMismatch
    for skew in (-301, 301):
        with pytest.raises(TimestampOutOfTolerance):
            get_provider("mailgun")([KEY], 300, {}).verify(signed(), {}, now=NOW + skew)
    assert refused(signed(signature="zz")) is MalformedSignature
    assert refused(signed(timestamp="soon")) is MalformedSignature
    assert refused(signed(token="t" * 257)) is MalformedSignature
    assert refused(json.dumps(SAMPLE["event-data"]).encode()) is MissingSignature
    assert refused(b"timestamp=1&token=t&signature=s") is MissingSignature  # legacy form posts
    assert refused(signed(token="")) is MissingSignature


def test_a_subaccounts_parent_signature_matches_the_primary_key() -> None:
    parent = mailgun_hmac("primary-key", str(NOW), TOKEN)
    body = signed(key="subaccount-key", **{"parent-signature": parent})
    get_provider("mailgun")(["primary-key"], 300, {}).verify(body, {}, now=NOW)
    assert refused(body) is SignatureMismatch


def test_the_default_window_is_the_sdks_unless_the_source_sets_one() -> None:
    env = {"MAILGUN_WEBHOOK_SECRET": KEY, "STRIPE_WEBHOOK_SECRET": "whsec_k"}
    sources = config_from_env(env).sources
    windows = {s.name: build_provider(i, s, env)[0].tolerance for i, s in enumerate(sources)}
    assert windows == {"mailgun": 900, "stripe": 300}
    own = SourceConfig(name="mg", provider="mailgun", secrets=["inline:k"], tolerance=300)
    assert build_provider(0, own, {})[0].tolerance == 300
    provider = build_provider(0, sources[[s.name for s in sources].index("mailgun")], env)[0]
    provider.verify(signed(), {}, now=NOW + 900)
    with pytest.raises(TimestampOutOfTolerance):
        provider.verify(signed(), {}, now=NOW - 901)


def test_a_source_cannot_turn_the_window_off() -> None:
    """The body is unsigned and the token is remembered only for the dedup window: without a
    timestamp window a captured token would carry forged event data once it is forgotten."""
    off = SourceConfig(name="mg", provider="mailgun", secrets=["inline:k"], tolerance=0)
    with pytest.raises(ConfigError, match=r"sources\[0\] \(mg\): mailgun: tolerance"):
        build_provider(0, off, {})


def test_transform() -> None:
    event = mailgun_transform(Webhook(source="mailgun", provider="mailgun", body=signed()))
    assert event.name == "mailgun/message.delivered"
    assert event.id == "mailgun-CPgfbmQMTCKtHW6uIWtuVe"
    assert event.ts == 1714557600329
    assert event.data == SAMPLE["event-data"]
    failed = {**SAMPLE, "event-data": {**SAMPLE["event-data"], "event": "failed", "id": "x"}}
    body = json.dumps(failed).encode()
    assert mailgun_transform(Webhook(source="m", provider="mailgun", body=body)).name == (
        "mailgun/message.failed"
    )


def test_zero_config_and_a_replayed_token_over_a_real_socket(tmp_path: Path) -> None:
    with zero_config_gateway({"MAILGUN_WEBHOOK_SECRET": KEY}, tmp_path) as (_, client, _):
        now = int(time.time())
        first = client.post("/webhooks/mailgun", content=signed(now))
        assert (first.status_code, first.json()["events"]) == (200, 1)
        # the same signature block on other event data (the body is not signed): a replay
        other = json.loads(signed(now))
        other["event-data"] = {**other["event-data"], "id": "forged-id", "event": "clicked"}
        replay = client.post("/webhooks/mailgun", content=json.dumps(other).encode())
        assert (replay.status_code, replay.json()["events"], replay.json()["duplicates"]) == (
            200,
            0,
            1,
        )
        fresh = client.post("/webhooks/mailgun", content=signed(now, token="b" * 50))
        assert fresh.json()["duplicates"] == 1  # a new token, the same event-data.id
        wrong = client.post("/webhooks/mailgun", content=signed(now, key="not-the-key"))
        assert wrong.status_code == 401 and "signature" in wrong.json()["error"]
