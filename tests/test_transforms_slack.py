"""The built-in Slack mapping, field by field: Events API, interactivity, slash commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest

from gateway import Event, TransformError, Webhook
from gateway.events import follows_convention
from gateway.plugins import load_registry
from gateway.transform_runner import TransformOutcome, run_transform

FIXTURES = Path(__file__).parent / "fixtures" / "transforms" / "slack"
RECEIVED = 1_724_940_000.25
RECEIVED_MS = 1_724_940_000_250


def body(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def envelope(name: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(body(name))
    return parsed


def form_payload(name: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(dict(parse_qsl(body(name).decode()))["payload"])
    return parsed


def run(raw: bytes) -> TransformOutcome:
    webhook = Webhook(source="slack", provider="slack", body=raw, received_at=RECEIVED)
    return run_transform(load_registry().get("slack"), webhook, prefix="slack", strict_names=True)


def one(raw: bytes) -> Event:
    [event] = run(raw).events
    return event


def without_token(fields: dict[str, Any]) -> dict[str, Any]:
    assert "token" in fields  # the fixture carries it, so dropping it is tested
    return {k: v for k, v in fields.items() if k != "token"}


def test_event_callback_message() -> None:
    event = one(body("event_callback.message.json"))
    assert event.name == "slack/message"
    assert event.id == "slack-Ev07JQ2K9X4M"
    assert event.ts == 1_724_938_215_000
    assert event.v is None
    assert event.data == without_token(envelope("event_callback.message.json"))
    assert event.data["event"]["text"] == "Deploy finished :rocket:"
    assert event.data["authorizations"][0]["team_id"] == "T0AB1CD2E"


def test_subtype_is_appended_to_the_name() -> None:
    event = one(body("event_callback.message.bot_message.json"))
    assert event.name == "slack/message.bot_message"
    assert event.id == "slack-Ev07JQ5AB2CD"
    assert event.ts == 1_724_938_302_000
    assert event.data["event"]["bot_id"] == "B0CIBOT999"


def test_app_mention() -> None:
    event = one(body("event_callback.app_mention.json"))
    assert event.name == "slack/app_mention"
    assert event.id == "slack-Ev07JQ8ZZ1QP"
    assert event.ts == 1_724_938_411_000
    assert event.data == without_token(envelope("event_callback.app_mention.json"))


def test_app_rate_limited() -> None:
    event = one(body("app_rate_limited.json"))
    assert event.name == "slack/app_rate_limited"
    assert event.id == "slack-rate-limited-A0APP12345-T0AB1CD2E-1724938440"
    assert event.ts == 1_724_938_440_000
    assert event.data == {
        "type": "app_rate_limited",
        "team_id": "T0AB1CD2E",
        "minute_rate_limited": 1_724_938_440,
        "api_app_id": "A0APP12345",
    }


@pytest.mark.parametrize("fixture", ["url_verification.json", "ssl_check.form"])
def test_handshakes_are_not_events(fixture: str) -> None:
    outcome = run(body(fixture))
    assert outcome.events == []
    assert outcome.payloads == []


def test_block_actions() -> None:
    event = one(body("block_actions.form"))
    assert event.name == "slack/block_actions"
    assert event.id == "slack-7649832117184.7592310984081.3c0e8c0f4d5a2b1e9f7d6c5b4a392817"
    assert event.ts == 1_724_938_519_062  # the action's action_ts, "1724938519.062473"
    assert event.data == without_token(form_payload("block_actions.form"))
    assert event.data["actions"][0]["value"] == "deploy-4f2a9c1"


def test_view_submission_uses_receive_time() -> None:
    event = one(body("view_submission.form"))
    assert event.name == "slack/view_submission"
    assert event.id == "slack-7649901532480.7592310984081.e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6"
    assert event.ts == RECEIVED_MS  # a view submission has no action_ts
    values = event.data["view"]["state"]["values"]
    assert values["summary"]["summary_input"]["value"] == "Checkout is slow"


def test_interaction_without_trigger_id_falls_back_to_the_view() -> None:
    payload = form_payload("view_submission.form")
    del payload["trigger_id"]
    payload["type"] = "view_closed"
    event = one(urlencode({"payload": json.dumps(payload)}).encode())
    assert event.name == "slack/view_closed"
    assert event.id == "slack-V07K3Q9M2HZ-1724938601.Zk3v9QxR"


def test_interaction_without_any_id_has_none() -> None:
    payload = {"type": "block_suggestion", "value": "ab", "action_id": "pick", "team": {}}
    event = one(urlencode({"payload": json.dumps(payload)}).encode())
    assert (event.name, event.id, event.ts) == ("slack/block_suggestion", None, RECEIVED_MS)


def test_global_and_message_shortcuts() -> None:
    shortcut = one(body("shortcut.form"))
    assert shortcut.name == "slack/shortcut"
    assert shortcut.id == "slack-7650011873520.7592310984081.0d9c8b7a6f5e4d3c2b1a09f8e7d6c5b4"
    assert shortcut.ts == 1_724_938_722_309
    assert shortcut.data["callback_id"] == "open_incident"
    action = one(body("message_action.form"))
    assert action.name == "slack/message_action"
    assert action.id == "slack-7650045123376.7592310984081.9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"
    assert action.ts == 1_724_938_801_551
    assert action.data == without_token(form_payload("message_action.form"))


def test_slash_command() -> None:
    event = one(body("slash_command.form"))
    assert event.name == "slack/command.invoked"
    assert event.id == "slack-7650102946400.7592310984081.5f4e3d2c1b0a9f8e7d6c5b4a39281706"
    assert event.ts == RECEIVED_MS
    assert event.data == {
        "team_id": "T0AB1CD2E",
        "team_domain": "acme-eng",
        "channel_id": "C0CHAN1234",
        "channel_name": "deploys",
        "user_id": "U0USR67890",
        "user_name": "jenny",
        "command": "/deploy",
        "text": "web production",
        "api_app_id": "A0APP12345",
        "is_enterprise_install": "false",
        "response_url": (
            "https://hooks.slack.com/commands/T0AB1CD2E/7650102946208/uJ0gVt1xYq2ZrB3nCw4mPs5D"
        ),
        "trigger_id": "7650102946400.7592310984081.5f4e3d2c1b0a9f8e7d6c5b4a39281706",
    }


def test_every_fixture_yields_conventional_names() -> None:
    names = []
    for path in sorted(FIXTURES.iterdir()):
        for event in run(path.read_bytes()).events:  # strict_names: a bad name would raise
            names.append(event.name)
            assert follows_convention(event.name, "slack")
    assert len(names) == 9


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"type": "event_callback", "event_id": "Ev1"}', "without an inner event type"),
        (b'{"team_id": "T1"}', "not a Slack event"),
        (b"team_id=T1&user_id=U1", "not a Slack event"),
        (b"payload=%5B1%5D", "JSON object"),
    ],
)
def test_unrecognised_requests_are_transform_errors(raw: bytes, message: str) -> None:
    with pytest.raises(TransformError, match=message):
        run(raw)
