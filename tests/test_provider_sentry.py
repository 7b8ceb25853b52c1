"""``sentry``: Sentry publishes no verifier (sentry-sdk reports errors, it does not check
webhooks), so requests are signed with the recipe of Sentry's docs
(https://docs.sentry.io/organization/integrations/integration-platform/webhooks/#verifying-the-signature):
``createHmac("sha256", clientSecret).update(body).digest("hex")`` in ``Sentry-Hook-Signature``."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from pathlib import Path

import pytest

import gateway
from gateway.config import config_from_env
from gateway.providers import (
    MalformedSignature,
    MissingSignature,
    SignatureMismatch,
    get_provider,
)
from gateway.webhook import PayloadError, Webhook
from tests.provider_support import refused as refused_by
from tests.provider_support import zero_config_gateway
from transforms.sentry import sentry as sentry_transform

BODY = (Path(gateway.__file__).parent / "samples" / "sentry" / "issue.created.json").read_bytes()
SECRET = "7f1bb3d4a2e34c5d9e8f0a1b2c3d4e5f60718293a4b5c6d7e8f9012345678901"
NOW = 1_714_557_600


def sentry_headers(body: bytes, secret: str = SECRET, ts: int = NOW) -> dict[str, str]:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"sentry-hook-signature": signature, "sentry-hook-resource": "issue",
            "sentry-hook-timestamp": str(ts), "request-id": "6b5f0b2e-3a1c-4c33-9d0e-1f2a3b4c5d6e",
            "content-type": "application/json"}  # fmt: skip


def refused(body: bytes, headers: dict[str, str], secret: str = SECRET) -> type:
    return refused_by(get_provider("sentry")([secret], 300, {}), body, headers)


def test_signature_broken_one_way_at_a_time() -> None:
    good = sentry_headers(BODY)
    provider = get_provider("sentry")(["an-old-secret", SECRET], 300, {})
    provider.verify(BODY, good, now=NOW)  # rotation: any configured secret
    assert get_provider("sentry")([SECRET], 300, {}).sign(BODY) == {
        "sentry-hook-signature": good["sentry-hook-signature"]
    }
    assert refused(BODY + b" ", good) is SignatureMismatch  # body
    assert refused(BODY, good, secret="another-client-secret") is SignatureMismatch  # key
    assert refused(BODY, {**good, "sentry-hook-signature": "0" * 64}) is SignatureMismatch
    assert refused(BODY, {**good, "sentry-hook-signature": "sha256=zz"}) is MalformedSignature
    assert refused(BODY, {k: v for k, v in good.items() if k != "sentry-hook-signature"}) is (
        MissingSignature
    )


def test_the_timestamp_is_not_signed_so_not_checked_and_the_body_digest_dedups() -> None:
    provider = get_provider("sentry")([SECRET], 300, {})
    stale = sentry_headers(BODY, ts=NOW - 86_400)
    provider.verify(BODY, stale, now=NOW)  # a day old: Sentry's timestamp proves nothing
    assert not provider.signs_timestamp and provider.body_dedup()
    webhook = Webhook(source="sentry", provider="sentry", body=BODY, headers=stale)
    assert provider.delivery_id(webhook) == "6b5f0b2e-3a1c-4c33-9d0e-1f2a3b4c5d6e"
    with pytest.raises(PayloadError, match="Sentry-Hook-Resource"):
        provider.check_payload(Webhook(source="sentry", provider="sentry", body=BODY))


def test_transform_names_resource_and_action() -> None:
    webhook = Webhook(source="sentry", provider="sentry", body=BODY, headers=sentry_headers(BODY),
                      received_at=NOW + 5)  # fmt: skip
    event = sentry_transform(webhook)
    assert (event.name, event.id, event.ts) == (
        "sentry/issue.created", "sentry-6b5f0b2e-3a1c-4c33-9d0e-1f2a3b4c5d6e", NOW * 1000
    )  # fmt: skip
    assert event.data["data"]["issue"]["shortId"] == "EXAMPLE-PROJECT-4"
    alert = Webhook(source="sentry", provider="sentry", body=b'{"action":"triggered","data":{}}',
                    headers={"Sentry-Hook-Resource": "event_alert"}, received_at=NOW)  # fmt: skip
    assert (sentry_transform(alert).name, sentry_transform(alert).ts) == (
        "sentry/event_alert.triggered", NOW * 1000
    )  # fmt: skip
    bare = Webhook(source="sentry", provider="sentry", body=b"{}",
                   headers={"Sentry-Hook-Resource": "installation"})  # fmt: skip
    assert sentry_transform(bare).name == "sentry/installation"


def test_zero_config_and_key_checks() -> None:
    [source] = config_from_env({"SENTRY_WEBHOOK_SECRET": SECRET}).sources
    assert (source.name, source.provider) == ("sentry", "sentry")
    cls = get_provider("sentry")
    assert cls.secret_problem(SECRET) is None
    problem = cls.secret_problem("sntrys_eyJpYXQiOjE3MTQ1NTc2MDB9_abc")
    assert problem is not None and "auth token" in problem
    assert (
        get_provider("sentry")([SECRET], 300, {}).event_headers("issue.created")[
            "sentry-hook-resource"
        ]
        == "issue"
    )


def test_the_raw_bytes_are_verified_not_a_reserialised_body() -> None:
    """Sentry signs the exact string it sends (``AppPlatformEvent.body``, its compact
    ``json.dumps`` with ``\\uXXXX`` escapes): the raw bytes verify, while the docs' Node recipe,
    ``JSON.stringify`` of the parsed body, writes the escapes as UTF-8 and is not what was
    signed."""
    payload = {"action": "created", "data": {"issue": {"id": "1", "title": "café ✓"}}}
    sent = json.dumps(payload, separators=(",", ":")).encode()  # what Sentry sends
    stringified = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    assert b"\\u00e9" in sent and stringified != sent
    provider = get_provider("sentry")([SECRET], 300, {})
    provider.verify(sent, sentry_headers(sent), now=NOW)
    assert refused(sent, sentry_headers(stringified)) is SignatureMismatch


def test_a_sentry_retry_with_a_fresh_request_id_is_a_duplicate(tmp_path: Path) -> None:
    """Sentry retries a failed delivery (3 times, 5 minutes apart) by building the request again:
    the same body under a new ``Request-ID`` and timestamp. The body digest drops it."""
    with zero_config_gateway({"SENTRY_WEBHOOK_SECRET": SECRET}, tmp_path) as (_, client, _):
        first = client.post("/webhooks/sentry", content=BODY, headers=sentry_headers(BODY))
        assert (first.status_code, first.json()["events"]) == (200, 1)
        retry = {**sentry_headers(BODY, ts=NOW + 300), "request-id": uuid.uuid4().hex}
        again = client.post("/webhooks/sentry", content=BODY, headers=retry)
        assert (again.status_code, again.json()["events"], again.json()["duplicates"]) == (
            200,
            0,
            1,
        )
