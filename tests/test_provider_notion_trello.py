"""``notion`` (the unsigned verification_token handshake, ``X-Notion-Signature``) and ``trello``
(HEAD check, ``X-Trello-Webhook`` over the body and the callback URL).

Neither publishes a verifier on PyPI (Notion's official SDK is JavaScript and has none; Trello
has no official Python SDK): requests are signed as the providers' docs compute them, with the
doc URL beside each recipe.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from pathlib import Path

import httpx
import pytest

import gateway
from gateway.config import config_from_env
from gateway.providers import (
    Inbound,
    MalformedSignature,
    MissingSignature,
    SignatureMismatch,
    get_provider,
)
from gateway.webhook import Webhook
from tests.provider_support import handshakes, recording, refused
from tests.server import run_gateway
from transforms.notion import notion as notion_transform

SAMPLES = Path(gateway.__file__).parent / "samples"
NOW = 1_714_557_600

# -- Notion -------------------------------------------------------------------------------------
# https://developers.notion.com/reference/webhooks: "X-Notion-Signature: sha256=" + hex
# HMAC-SHA256 of the request body keyed by the subscription's verification_token.

NOTION = (SAMPLES / "notion" / "page.created.json").read_bytes()
TOKEN = "secret_tMrlL1qK5vuQAh1b6cZGhFChZTSYJlce98V0pYn7yBl"  # the docs' example token


def notion_headers(body: bytes, token: str = TOKEN) -> dict[str, str]:
    digest = hmac.new(token.encode(), body, hashlib.sha256).hexdigest()
    return {"x-notion-signature": f"sha256={digest}", "content-type": "application/json"}


def test_notion_signature_broken_one_way_at_a_time() -> None:
    provider = get_provider("notion")(["secret_old", TOKEN], 300, {})
    provider.verify(NOTION, notion_headers(NOTION))
    assert get_provider("notion")([TOKEN]).sign(NOTION) == {
        "x-notion-signature": notion_headers(NOTION)["x-notion-signature"]
    }
    assert refused(provider, NOTION + b" ", notion_headers(NOTION)) is SignatureMismatch  # body
    assert refused(provider, NOTION, notion_headers(NOTION, "secret_x")) is SignatureMismatch
    zeros = {"x-notion-signature": "sha256=" + "0" * 64}
    assert refused(provider, NOTION, zeros) is SignatureMismatch  # signature
    assert refused(provider, NOTION, {"x-notion-signature": "md5=ab"}) is MalformedSignature
    assert refused(provider, NOTION, {}) is MissingSignature
    webhook = Webhook(source="notion", provider="notion", body=NOTION)
    assert provider.delivery_id(webhook) == "367cba44-b6f3-4c92-81e7-6a2e9659efd4"
    assert provider.body_dedup()  # no signed timestamp
    cls = get_provider("notion")
    assert cls.secret_problem(TOKEN) is None
    assert "Notion API token" in str(cls.secret_problem("ntn_1234567890abcdef"))


def test_notion_verification_request_is_noted_not_trusted(caplog: pytest.LogCaptureFixture) -> None:
    provider = get_provider("notion")(["pending"], 300, {})
    body = json.dumps({"verification_token": TOKEN}).encode()
    with caplog.at_level(logging.WARNING, logger="gateway.providers.notion"):
        reply = provider.challenge(Inbound("POST", body, {}))
    assert reply is not None and reply.status == 200
    assert TOKEN in reply.note and "NOTION_WEBHOOK_SECRET" in reply.note
    assert TOKEN in caplog.text
    known = get_provider("notion")([TOKEN]).challenge(Inbound("POST", body, {}))
    assert known is not None and TOKEN not in known.note and "already" in known.note
    # an event mentioning the key, or a huge body, is no handshake: it must be signed
    event = json.dumps({"type": "page.created", "verification_token": TOKEN}).encode()
    assert provider.challenge(Inbound("POST", event, {})) is None
    assert provider.challenge(Inbound("POST", body + b" " * 5000, {})) is None
    with pytest.raises(MalformedSignature):
        provider.challenge(Inbound("POST", b'{"verification_token": "<x>\\n"}', {}))


def test_notion_transform() -> None:
    event = notion_transform(Webhook(source="notion", provider="notion", body=NOTION))
    assert (event.name, event.id, event.ts) == (
        "notion/page.created", "notion-367cba44-b6f3-4c92-81e7-6a2e9659efd4", 1733442934285
    )  # fmt: skip
    assert event.data["entity"] == {"id": "153104cd-477e-809d-8dc4-ff2d96ae3090", "type": "page"}
    updated = {**json.loads(NOTION), "type": "data_source.schema_updated"}
    body = json.dumps(updated).encode()
    assert notion_transform(Webhook(source="n", provider="notion", body=body)).name == (
        "notion/data_source.schema_updated"
    )
    with pytest.raises(ValueError, match=r"page\.created"):
        notion_transform(Webhook(source="n", provider="notion", body=b'{"type": "x"}'))


def test_notion_zero_config_handshake_then_events(tmp_path: Path) -> None:
    env = {"NOTION_WEBHOOK_SECRET": TOKEN, "GATEWAY_DATA_DIR": str(tmp_path)}
    config = recording(config_from_env(env))
    assert [s.provider for s in config.sources] == ["notion"]
    verification = json.dumps({"verification_token": "secret_N3wT0ken"}).encode()
    with run_gateway(config, env) as gw, httpx.Client(base_url=gw.url, timeout=10) as client:
        answer = client.post("/webhooks/notion", content=verification,
                             headers={"content-type": "application/json"})  # fmt: skip
        assert answer.status_code == 200
        posted = client.post("/webhooks/notion", content=NOTION, headers=notion_headers(NOTION))
        assert (posted.status_code, posted.json()["events"]) == (200, 1)
        again = client.post("/webhooks/notion", content=NOTION, headers=notion_headers(NOTION))
        assert again.json()["duplicates"] == 1
        assert client.post("/webhooks/notion", content=NOTION).status_code == 401
        metrics = client.get("/metrics").text
        assert 'handshakes_total{provider="notion",source="notion"} 1.0' in metrics
        assert 'events_accepted_total{source="notion"} 1.0' in metrics
    notes = [m for reason, status, m in handshakes(tmp_path, "notion") if reason == "handshake"]
    assert len(notes) == 1 and "secret_N3wT0ken" in notes[0]
