"""``meta`` (X-Hub-Signature-256, the GET hub.challenge) and ``gitlab`` (secret token, or a
``whsec_`` signing token checked with the ``standardwebhooks`` package)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path

import pytest
import standardwebhooks

import gateway
from gateway.providers import (
    MalformedSignature,
    MissingSignature,
    SignatureMismatch,
    TimestampOutOfTolerance,
    get_provider,
)
from gateway.webhook import Webhook
from tests.provider_support import refused, zero_config_gateway
from transforms.gitlab import gitlab as gitlab_transform
from transforms.meta import meta as meta_transform

SAMPLES = Path(gateway.__file__).parent / "samples"
META = (SAMPLES / "meta" / "messages.changed.json").read_bytes()
GITLAB = (SAMPLES / "gitlab" / "merge_request.open.json").read_bytes()
APP_SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
NOW = 1_714_557_600


def meta_headers(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"x-hub-signature-256": f"sha256={digest}", "content-type": "application/json"}


def test_meta_signature_broken_one_way_at_a_time() -> None:
    provider = get_provider("meta")([APP_SECRET], 300, {"verify_token": "vt"})
    provider.verify(META, meta_headers(META))
    assert provider.sign(META) == {"x-hub-signature-256": meta_headers(META)["x-hub-signature-256"]}
    assert refused(provider, META + b" ", meta_headers(META)) is SignatureMismatch  # body
    assert refused(provider, META, meta_headers(META, "other")) is SignatureMismatch  # key
    assert (
        refused(provider, META, {"x-hub-signature-256": "sha256=" + "0" * 64}) is SignatureMismatch
    )
    assert refused(provider, META, {"x-hub-signature-256": "sha1=abc"}) is MalformedSignature
    assert refused(provider, META, {}) is MissingSignature
    with pytest.raises(ValueError, match="unknown option 'header'"):
        get_provider("meta")([APP_SECRET], 300, {"header": "X-Other"})


def test_meta_one_event_per_change_with_stable_ids() -> None:
    webhook = Webhook(source="meta", provider="meta", body=META, received_at=NOW)
    [event] = meta_transform(webhook)
    assert event.name == "meta/messages.changed"
    assert event.id == f"meta-{hashlib.sha256(META).hexdigest()[:32]}-0"
    assert event.ts == NOW * 1000  # the entry has no time: the receive time
    assert event.data["value"]["messages"][0]["text"]["body"] == "Does it come in another color?"
    messenger = (
        b'{"object":"page","entry":[{"id":"1","time":1714557600123,"messaging":[{"a":1},{"b":2}]}]}'
    )
    first, second = meta_transform(Webhook(source="meta", provider="meta", body=messenger))
    assert (first.name, first.ts, second.id[-2:]) == (
        "meta/messaging.received",
        1714557600123,
        "-1",
    )


def test_meta_zero_config_subscribe_check_then_notifications(tmp_path: Path) -> None:
    with zero_config_gateway(
        {"META_WEBHOOK_SECRET": APP_SECRET, "META_VERIFY_TOKEN": "my-verify-token"}, tmp_path
    ) as (_, client, _):
        check = {"hub.mode": "subscribe", "hub.verify_token": "my-verify-token",
                 "hub.challenge": "CHALLENGE_ACCEPTED"}  # fmt: skip
        assert client.get("/webhooks/meta", params=check).text == "CHALLENGE_ACCEPTED"
        assert client.get("/webhooks/meta", params={**check, "hub.mode": "x"}).status_code == 401
        posted = client.post("/webhooks/meta", content=META, headers=meta_headers(META))
        assert (posted.status_code, posted.json()["events"]) == (200, 1)
        replayed = client.post("/webhooks/meta", content=META, headers=meta_headers(META))
        assert replayed.json()["duplicates"] == 1


# -- GitLab -------------------------------------------------------------------------------------


def test_gitlab_secret_token() -> None:
    provider = get_provider("gitlab")(["glsecret-1", "glsecret-2"], 300, {})
    provider.verify(GITLAB, {"x-gitlab-token": "glsecret-2"})
    assert provider.sign(GITLAB) == {"x-gitlab-token": "glsecret-1"}
    assert refused(provider, GITLAB, {"x-gitlab-token": "glsecret-3"}) is SignatureMismatch
    assert refused(provider, GITLAB, {}) is MissingSignature


def test_gitlab_signing_token_as_standard_webhooks() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    signature = standardwebhooks.Webhook(secret).sign(
        "msg_1", datetime.fromtimestamp(NOW, UTC), GITLAB.decode()
    )
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(NOW), "webhook-signature": signature}
    provider = get_provider("gitlab")([secret, "glsecret"], 300, {})
    provider.verify(GITLAB, headers, now=NOW)
    assert refused(provider, GITLAB + b" ", headers) is SignatureMismatch  # body
    assert (
        refused(provider, GITLAB, {**headers, "webhook-timestamp": str(NOW + 1)})
        is SignatureMismatch
    )
    assert refused(provider, GITLAB, headers, now=NOW + 301) is TimestampOutOfTolerance
    assert refused(provider, GITLAB, headers, now=NOW - 301) is TimestampOutOfTolerance
    other = get_provider("gitlab")(["whsec_" + "QUJD" * 8], 300, {})
    assert refused(other, GITLAB, headers) is SignatureMismatch  # key
    signed = get_provider("gitlab")([secret], 300, {}).sign(GITLAB)  # now
    assert standardwebhooks.Webhook(secret).verify(GITLAB.decode(), signed)["object_kind"]


def test_gitlab_transform() -> None:
    headers = {"Idempotency-Key": "f1b2c3", "X-Gitlab-Event-UUID": "u-1",
               "X-Gitlab-Event": "Merge Request Hook"}  # fmt: skip
    event = gitlab_transform(
        Webhook(source="gitlab", provider="gitlab", body=GITLAB, headers=headers)
    )
    assert (event.name, event.id, event.ts) == (
        "gitlab/merge_request.open", "gitlab-f1b2c3", 1386091414000
    )  # fmt: skip
    push = Webhook(source="gitlab", provider="gitlab", body=b'{"object_kind":"push"}',
                   headers={"X-Gitlab-Event-UUID": "u-2"}, received_at=NOW)  # fmt: skip
    assert (gitlab_transform(push).name, gitlab_transform(push).id) == ("gitlab/push", "gitlab-u-2")
    system = Webhook(source="gitlab", provider="gitlab", body=b'{"event_name":"project_create"}')
    assert gitlab_transform(system).name == "gitlab/project.create"
