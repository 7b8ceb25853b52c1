"""The built-in Intercom mapping, field by field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway import TransformError, Webhook
from gateway.plugins import load_registry
from gateway.transform_runner import TransformOutcome, run_transform

FIXTURES = Path(__file__).parent / "fixtures" / "transforms" / "intercom"
RECEIVED = 1_724_940_000.25


def body(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def notification(name: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(body(name))
    return parsed


def run(raw: bytes) -> TransformOutcome:
    webhook = Webhook(source="intercom", provider="intercom", body=raw, received_at=RECEIVED)
    func = load_registry().get("intercom")
    return run_transform(func, webhook, prefix="intercom", strict_names=True)


def test_notification() -> None:
    outcome = run(body("conversation.user.created.json"))
    [event] = outcome.events
    assert event.name == "intercom/conversation.user.created"
    assert event.id == "intercom-notif_6a8f2c1e-4b7d-4e0a-9c3f-1d2e5b8a7f60"
    assert event.ts == 1_724_939_103_000
    assert event.v is None
    assert event.data == notification("conversation.user.created.json")
    assert event.data["data"]["item"]["source"]["author"]["email"] == "jenny.rosen@example.com"
    assert outcome.convention_warnings == []


def test_ping_is_not_an_event() -> None:
    outcome = run(body("ping.json"))
    assert outcome.events == []
    assert outcome.payloads == []


def test_null_id_gives_an_event_without_id() -> None:
    source = notification("conversation.user.created.json")
    source["id"] = None
    outcome = run(json.dumps(source).encode())
    [event] = outcome.events
    assert event.id is None
    assert "id" not in orjson.loads(outcome.payloads[0])
    assert b"intercom-None" not in outcome.payloads[0]


def test_missing_created_at_falls_back_to_receive_time() -> None:
    source = notification("conversation.user.created.json")
    del source["created_at"]
    [event] = run(json.dumps(source).encode()).events
    assert event.ts == 1_724_940_000_250


@pytest.mark.parametrize("raw", [b'{"type": "notification_event", "id": "notif_1"}', b"[]"])
def test_notification_without_topic_is_a_transform_error(raw: bytes) -> None:
    with pytest.raises(TransformError, match="with a 'topic'"):
        run(raw)
