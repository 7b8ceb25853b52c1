"""``zendesk``: Zendesk publishes no verifier (zenpy and node-zendesk are API clients), so
requests are signed with the recipe of Zendesk's docs
(https://developer.zendesk.com/documentation/webhooks/verifying/):
``base64(HMACSHA256(TIMESTAMP + BODY))`` keyed with the signing secret as text."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import gateway
from gateway.config import config_from_env
from gateway.providers import (
    MalformedSignature,
    MissingSignature,
    SignatureMismatch,
    TimestampOutOfTolerance,
    get_provider,
)
from gateway.providers.zendesk import TEST_SECRET
from gateway.webhook import Webhook
from tests.provider_support import refused as refused_by
from transforms.zendesk import zendesk as zendesk_transform

BODY = (Path(gateway.__file__).parent / "samples" / "zendesk" / "ticket.created.json").read_bytes()
SECRET = "HRkRd4BeOAoUkfZr-mhauJT64rvBASlJRoIyPsd3zeA="
NOW = 1_714_557_600  # 2024-05-01T10:00:00Z
STAMP = "2024-05-01T10:00:00Z"


def zendesk_headers(body: bytes, stamp: str = STAMP, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
    return {"x-zendesk-webhook-signature": base64.b64encode(digest).decode(),
            "x-zendesk-webhook-signature-timestamp": stamp,
            "x-zendesk-webhook-id": "01F1KRFQ6BG29CNWFR60NK5FNY",
            "x-zendesk-webhook-invocation-id": "8350205582",
            "content-type": "application/json"}  # fmt: skip


def refused(body: bytes, headers: dict[str, str], now: float = NOW, secret: str = SECRET) -> type:
    return refused_by(get_provider("zendesk")([secret], 300, {}), body, headers, now)


def test_signature_broken_one_way_at_a_time() -> None:
    good = zendesk_headers(BODY)
    get_provider("zendesk")(["old-secret", SECRET], 300, {}).verify(BODY, good, now=NOW)
    signed = get_provider("zendesk")([SECRET], 300, {}).sign(BODY, timestamp=NOW)
    assert signed == {k: v for k, v in good.items() if k.endswith(("signature", "timestamp"))}
    assert refused(BODY + b" ", good) is SignatureMismatch  # body
    later = {**good, "x-zendesk-webhook-signature-timestamp": "2024-05-01T10:00:01Z"}
    assert refused(BODY, later) is SignatureMismatch  # timestamp
    assert (
        refused(BODY, {**good, "x-zendesk-webhook-signature": "A" * 43 + "="}) is SignatureMismatch
    )
    assert refused(BODY, good, secret="another-signing-secret") is SignatureMismatch  # key
    for skew in (-301, 301):  # the signed timestamp bounds replays both ways
        assert refused(BODY, good, now=NOW + skew) is TimestampOutOfTolerance
    get_provider("zendesk")([SECRET], 300, {}).verify(BODY, good, now=NOW + 299)
    naive = zendesk_headers(BODY, "2024-05-01T10:00:00")
    assert refused(BODY, naive) is MalformedSignature  # an ISO time without a zone
    assert refused(BODY, {**good, "x-zendesk-webhook-signature": "%%%"}) is MalformedSignature
    no_stamp = {k: v for k, v in good.items() if not k.endswith("timestamp")}
    assert refused(BODY, no_stamp) is MissingSignature


def test_the_timestamp_comes_first_as_the_current_docs_say() -> None:
    """An older revision of the docs page wrote ``(BODY)(TIMESTAMP)``; its vector is refused."""
    body, stamp = b'{"say": "hello"}', "2021-07-25T10:00:00Z"
    old = {"x-zendesk-webhook-signature": "tRDSF7URY8BLCDlaBcQ7FHu051Zk+aAB0NKMP53teMw=",
           "x-zendesk-webhook-signature-timestamp": stamp}  # fmt: skip
    at = 1_627_207_200
    assert refused(body, old, now=at, secret=SECRET) is SignatureMismatch
    get_provider("zendesk")([SECRET], 300, {}).verify(body, zendesk_headers(body, stamp), now=at)


def test_zendesk_test_secret_verifies_but_check_refuses_it() -> None:
    headers = zendesk_headers(BODY, secret=TEST_SECRET)
    get_provider("zendesk")([SECRET, TEST_SECRET], 300, {}).verify(BODY, headers, now=NOW)
    cls = get_provider("zendesk")
    problem = cls.secret_problem(TEST_SECRET)
    assert problem is not None and "public test signing secret" in problem
    assert cls.secret_problem(SECRET) is None


def test_dedup_ids_and_transform() -> None:
    provider = get_provider("zendesk")([SECRET], 300, {})
    assert provider.signs_timestamp and not provider.body_dedup()
    headers = zendesk_headers(BODY)
    webhook = Webhook(source="zendesk", provider="zendesk", body=BODY, headers=headers)
    assert provider.delivery_id(webhook) == "cbe4028c-7239-495d-b020-f22348516046"
    event = zendesk_transform(webhook)
    assert (event.name, event.id, event.ts) == (
        "zendesk/ticket.created", "zendesk-cbe4028c-7239-495d-b020-f22348516046", NOW * 1000 + 123
    )  # fmt: skip
    assert event.data["detail"]["subject"] == "Printer on fire"
    trigger_body = b'{"ticket_id": "5158", "type": "incident", "id": "not-an-event-id"}'
    trigger = Webhook(source="zendesk", provider="zendesk", body=trigger_body, headers=headers)
    assert provider.delivery_id(trigger) == "01F1KRFQ6BG29CNWFR60NK5FNY-8350205582"
    made = zendesk_transform(trigger)
    assert (made.name, made.id, made.ts) == (
        "zendesk/webhook.invoked", "zendesk-01F1KRFQ6BG29CNWFR60NK5FNY-8350205582", NOW * 1000
    )  # fmt: skip
    user = b'{"type": "zen:event-type:user.active_changed", "id": "2b24", "time": "bad"}'
    changed = zendesk_transform(Webhook(source="zendesk", provider="zendesk", body=user,
                                        received_at=NOW))  # fmt: skip
    assert (changed.name, changed.ts) == ("zendesk/user.active_changed", NOW * 1000)


def test_zero_config() -> None:
    [source] = config_from_env({"ZENDESK_WEBHOOK_SECRET": SECRET}).sources
    assert (source.name, source.provider) == ("zendesk", "zendesk")
