"""``docusign``: Connect's HMAC headers, computed as DocuSign's "HMAC security" guide shows
(base64 HMAC-SHA256 of the raw body with each key); no DocuSign SDK computes them."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

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
from transforms.docusign import docusign as docusign_transform

BODY = (
    Path(gateway.__file__).parent / "samples" / "docusign" / "envelope.completed.json"
).read_bytes()
KEY_1, KEY_2 = "Hx8QqkfG4U4pAvP9nUJq0wdvZ7rsG8mQW9Yt5a3cVyk=", "a2V5LXR3by1mb3Itcm90YXRpb24="


def connect_signature(body: bytes, key: str) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def refused(headers: dict[str, str], body: bytes = BODY, *keys: str) -> type:
    provider = get_provider("docusign")(list(keys) or [KEY_1], 300, {})
    return refused_by(provider, body, headers, None)


def test_any_signature_header_may_match_any_key() -> None:
    provider = get_provider("docusign")([KEY_2], 300, {})
    headers = {"x-docusign-signature-1": connect_signature(BODY, KEY_1),
               "x-docusign-signature-2": connect_signature(BODY, KEY_2)}  # fmt: skip
    provider.verify(BODY, headers)
    get_provider("docusign")([KEY_1, "other"], 300, {}).verify(BODY, headers)
    assert get_provider("docusign")([KEY_1, KEY_2], 300, {}).sign(BODY) == headers


def test_broken_one_way_at_a_time() -> None:
    good = {"x-docusign-signature-1": connect_signature(BODY, KEY_1)}
    assert refused(good, BODY.replace(b"completed", b"declined", 1)) is SignatureMismatch  # body
    assert refused({"x-docusign-signature-1": connect_signature(BODY, KEY_2)}) is SignatureMismatch
    assert refused(good, BODY, KEY_2) is SignatureMismatch  # key
    zero = base64.b64encode(b"\0" * 32).decode()
    assert refused({"x-docusign-signature-1": zero}) is SignatureMismatch  # signature
    assert refused({}) is MissingSignature
    assert refused({"x-docusign-signature-0": good["x-docusign-signature-1"]}) is MissingSignature
    assert refused({"x-docusign-signature-1": "not base64"}) is MalformedSignature


def test_transform_and_dedup_over_a_real_socket(tmp_path: Path) -> None:
    event = docusign_transform(Webhook(source="docusign", provider="docusign", body=BODY))
    assert event.name == "docusign/envelope.completed"
    assert (
        event.id == "docusign-93be49ab-xxxx-xxxx-xxxx-f752070d71ec-envelope-completed"
        "-2024-05-01T10:00:00.8570000Z"
    )
    assert event.ts == 1714557600857
    variables = {"DOCUSIGN_WEBHOOK_SECRET": f"{KEY_1},{KEY_2}"}
    with zero_config_gateway(variables, tmp_path) as (_, client, _):
        headers = {"x-docusign-signature-1": connect_signature(BODY, KEY_2),
                   "content-type": "application/json"}  # fmt: skip
        assert (
            client.post("/webhooks/docusign", content=BODY, headers=headers).json()["events"] == 1
        )
        again = client.post("/webhooks/docusign", content=BODY, headers=headers)
        assert again.json()["duplicates"] == 1
