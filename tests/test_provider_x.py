"""``x``: deliveries signed and CRC answers computed as X's webhook guide does (X's Python SDK,
``xdk``, has no webhook helper): base64 HMAC-SHA256 with the consumer secret, ``sha256=``.
https://docs.x.com/x-api/webhooks/quickstart (CRC and "Validating the signature header")"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest

import gateway
from gateway.providers import (
    MalformedSignature,
    MissingSignature,
    SignatureMismatch,
    get_provider,
)
from gateway.webhook import Webhook
from tests.provider_support import refused as refused_by
from tests.provider_support import zero_config_gateway
from transforms.x import x as x_transform

BODY = (Path(gateway.__file__).parent / "samples" / "x" / "tweet.create.json").read_bytes()
SECRET = "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw7x9Bbyz"  # 50 letters and digits, like X's


def b64_hmac(secret: str, message: bytes) -> str:
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode()


def x_headers(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"x-twitter-webhooks-signature": b64_hmac(secret, body),
            "content-type": "application/json"}  # fmt: skip


def refused(body: bytes, headers: dict[str, str], secret: str = SECRET) -> type:
    return refused_by(get_provider("x")([secret], 300, {}), body, headers, None)


def test_signature_broken_one_way_at_a_time() -> None:
    provider = get_provider("x")([SECRET], 300, {})
    provider.verify(BODY, x_headers(BODY))
    assert provider.sign(BODY) == {"x-twitter-webhooks-signature": b64_hmac(SECRET, BODY)}
    assert provider.body_dedup()  # X signs no timestamp
    assert refused(BODY + b" ", x_headers(BODY)) is SignatureMismatch  # body
    assert refused(BODY, x_headers(BODY, "another")) is SignatureMismatch  # key
    wrong = {"x-twitter-webhooks-signature": "sha256=" + base64.b64encode(bytes(32)).decode()}
    assert refused(BODY, wrong) is SignatureMismatch  # signature
    hexed = {"x-twitter-webhooks-signature": "sha256=" + "ab" * 32}
    assert refused(BODY, hexed) is MalformedSignature  # hex is not X's encoding
    assert refused(BODY, {}) is MissingSignature
    cls = get_provider("x")
    assert cls.secret_problem(SECRET) is None
    assert "bearer token" in str(cls.secret_problem("AAAAAAAAAAAAAAAAAAAAAMLheAAAAAAA0%2BuSeid"))
    assert "letters and digits" in str(cls.secret_problem("not-a-consumer-secret"))


def test_crc_answered_and_deliveries_deduplicated(tmp_path: Path) -> None:
    with zero_config_gateway({"X_WEBHOOK_SECRET": SECRET}, tmp_path) as (_, client, _):
        crc = client.get("/webhooks/x", params={"crc_token": "Hz0zbmFNhsHldLJ1qXxPHr4Q"})
        assert crc.status_code == 200
        assert crc.json() == {"response_token": b64_hmac(SECRET, b"Hz0zbmFNhsHldLJ1qXxPHr4Q")}
        # the CRC is unsigned: it must not sign a body someone could then post
        small = '{"for_user_id":"1","favorite_events":[{"id":"f1"}]}'
        oracle = client.get("/webhooks/x", params={"crc_token": small})
        assert oracle.status_code == 401 and oracle.json()["reason"] == "malformed_signature"
        assert client.get("/webhooks/x").status_code == 401
        posted = client.post("/webhooks/x", content=BODY, headers=x_headers(BODY))
        assert (posted.status_code, posted.json()["events"]) == (200, 1)
        replayed = client.post("/webhooks/x", content=BODY, headers=x_headers(BODY))
        assert replayed.json()["duplicates"] == 1
        assert client.post("/webhooks/x", content=BODY).status_code == 401
        metrics = client.get("/metrics").text
        assert 'handshakes_total{provider="x",source="x"} 1.0' in metrics


def test_transform_account_activity_items_and_x_activity_events() -> None:
    [tweet] = x_transform(Webhook(source="x", provider="x", body=BODY))
    assert (tweet.name, tweet.id, tweet.ts) == (
        "x/tweet.create", "x-2244994945-tweet_create-1050118621198921728", 1539202764597
    )  # fmt: skip
    assert tweet.data["item"]["user"]["screen_name"] == "TwitterAPI"
    mixed = json.dumps(
        {"for_user_id": "2244994945",
         "follow_events": [{"type": "unfollow", "created_timestamp": "1517588749178",
                            "target": {"id": "1"}, "source": {"id": "2"}}],
         "direct_message_events": [{"type": "message_create", "id": "954491830116155396",
                                    "created_timestamp": "1516403560557"}],
         "user_event": {"revoke": {"date_time": "2018-05-24T09:48:12+00:00",
                                   "target": {"app_id": "13090192"}}}}
    ).encode()  # fmt: skip
    follow, dm, revoke = x_transform(Webhook(source="x", provider="x", body=mixed))
    assert (follow.name, follow.ts) == ("x/follow.unfollow", 1517588749178)
    assert follow.id == f"x-{hashlib.sha256(mixed).hexdigest()[:32]}-0"
    assert (dm.name, dm.id) == (
        "x/direct_message.create", "x-2244994945-direct_message-954491830116155396"
    )  # fmt: skip
    assert revoke.name == "x/user_event.revoke"
    activity = json.dumps(
        {"data": {"event_uuid": "2080761390344937796", "filter": {"user_id": "1716450569358098432"},
                  "event_type": "profile.update.bio", "tag": "bio",
                  "payload": {"before": "a", "after": "b"}}}
    ).encode()  # fmt: skip
    [event] = x_transform(Webhook(source="x", provider="x", body=activity))
    assert (event.name, event.id) == ("x/profile.update.bio", "x-2080761390344937796")
    with pytest.raises(ValueError, match="_events"):
        x_transform(Webhook(source="x", provider="x", body=b'{"for_user_id": "1"}'))
