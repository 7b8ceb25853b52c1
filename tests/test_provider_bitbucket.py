"""``bitbucket``: Atlassian publishes no webhook verifier on PyPI or npm (the ``bitbucket`` npm
package and atlassian-python-api are API clients), so requests are signed with the recipe of
Bitbucket Cloud's docs (https://support.atlassian.com/bitbucket-cloud/docs/manage-webhooks/,
"Secure webhooks"): ``X-Hub-Signature: sha256=`` + hex HMAC-SHA256 of the body."""

from __future__ import annotations

import hashlib
import hmac
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
from transforms.bitbucket import bitbucket as bitbucket_transform

SAMPLES = Path(gateway.__file__).parent / "samples" / "bitbucket"
PR = (SAMPLES / "pullrequest.created.json").read_bytes()
PUSH = (SAMPLES / "repo.push.json").read_bytes()
SECRET = "Zq8vN3kR7tW1yB4eH6jM9pS2uX5aD0fG"
NOW = 1_714_557_600
REQUEST = "c2a6e8b1-5f3d-4e7a-9b0c-1d2e3f4a5b6c"


def bitbucket_headers(
    body: bytes, key: str = "pullrequest:created", secret: str = SECRET
) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"x-hub-signature": f"sha256={digest}", "x-event-key": key, "x-request-uuid": REQUEST,
            "x-hook-uuid": "{4e5f6a7b-8c9d-4e0f-a1b2-c3d4e5f6a7b8}", "x-attempt-number": "1",
            "content-type": "application/json"}  # fmt: skip


def refused(body: bytes, headers: dict[str, str], secret: str = SECRET) -> type:
    return refused_by(get_provider("bitbucket")([secret], 300, {}), body, headers)


def test_signature_broken_one_way_at_a_time() -> None:
    good = bitbucket_headers(PR)
    get_provider("bitbucket")(["old-secret", SECRET], 300, {}).verify(PR, good, now=NOW)
    assert get_provider("bitbucket")([SECRET], 300, {}).sign(PR) == {
        "x-hub-signature": good["x-hub-signature"]
    }
    assert refused(PR + b" ", good) is SignatureMismatch  # body
    assert refused(PR, good, secret="another-secret") is SignatureMismatch  # key
    assert refused(PR, {**good, "x-hub-signature": "sha256=" + "0" * 64}) is SignatureMismatch
    sha1 = "sha1=" + hmac.new(SECRET.encode(), PR, hashlib.sha1).hexdigest()
    assert refused(PR, {**good, "x-hub-signature": sha1}) is MalformedSignature  # GitHub's form
    unsigned = {k: v for k, v in good.items() if k != "x-hub-signature"}
    assert refused(PR, unsigned) is MissingSignature  # a webhook saved without a secret


def test_dedup_and_payload_check() -> None:
    provider = get_provider("bitbucket")([SECRET], 300, {})
    assert not provider.signs_timestamp and provider.body_dedup()  # retries: same body
    webhook = Webhook(source="bitbucket", provider="bitbucket", body=PR,
                      headers=bitbucket_headers(PR))  # fmt: skip
    assert provider.delivery_id(webhook) == REQUEST
    provider.check_payload(webhook)
    with pytest.raises(PayloadError, match="X-Event-Key"):
        provider.check_payload(Webhook(source="bitbucket", provider="bitbucket", body=PR))
    assert provider.event_headers("pullrequest.comment_created")["x-event-key"] == (
        "pullrequest:comment_created"
    )


def test_transform_names_and_times() -> None:
    pr = Webhook(source="bitbucket", provider="bitbucket", body=PR, headers=bitbucket_headers(PR),
                 received_at=NOW + 60)  # fmt: skip
    event = bitbucket_transform(pr)
    assert (event.name, event.id, event.ts) == (
        "bitbucket/pullrequest.created", f"bitbucket-{REQUEST}", NOW * 1000 + 123
    )  # fmt: skip
    assert event.data["pullrequest"]["title"] == "Add retry to the webhook client"
    push = Webhook(source="bitbucket", provider="bitbucket", body=PUSH,
                   headers=bitbucket_headers(PUSH, "repo:push"), received_at=NOW)  # fmt: skip
    made = bitbucket_transform(push)
    assert (made.name, made.ts) == ("bitbucket/repo.push", NOW * 1000)  # no event time: receipt
    comment = (b'{"comment": {"created_on": "2024-05-01T10:00:05+00:00", "updated_on": null},'
               b'"pullrequest": {"updated_on": "2024-05-01T09:00:00+00:00"}}')  # fmt: skip
    commented = bitbucket_transform(Webhook(
        source="bitbucket", provider="bitbucket", body=comment,
        headers={"X-Event-Key": "pullrequest:comment_created"}))  # fmt: skip
    assert (commented.name, commented.ts) == (
        "bitbucket/pullrequest.comment_created", (NOW + 5) * 1000
    )  # fmt: skip
    with pytest.raises(ValueError, match="noun:verb"):
        bitbucket_transform(Webhook(source="bitbucket", provider="bitbucket", body=b"{}",
                                    headers={"X-Event-Key": "push"}))  # fmt: skip


def test_zero_config() -> None:
    [source] = config_from_env({"BITBUCKET_WEBHOOK_SECRET": SECRET}).sources
    assert (source.name, source.provider) == ("bitbucket", "bitbucket")
