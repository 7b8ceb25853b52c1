"""Built-in mappings, field by field, on realistic fixtures."""

from __future__ import annotations

import json

import pytest

from gateway.events import Event, follows_convention
from gateway.plugins import load_registry
from gateway.transform_runner import run_transform
from gateway.webhook import Webhook
from tests.helpers import fixture

RECEIVED = 1_700_000_000.5


def run(provider: str, name: str) -> list[Event]:
    body = fixture(f"{provider}/{name}")
    webhook = Webhook(source=provider, provider=provider, body=body, received_at=RECEIVED)
    outcome = run_transform(load_registry().get(provider), webhook, prefix=provider)
    assert outcome.convention_warnings == []
    for event in outcome.events:
        assert follows_convention(event.name, provider)
    return outcome.events


@pytest.mark.parametrize(
    "name",
    [
        "customer.created.json",
        "customer.updated.json",
        "invoice.paid.json",
        "checkout.session.completed.json",
        "connect.account.updated.json",
    ],
)
def test_stripe_snapshot_events(name: str) -> None:
    source = json.loads(fixture(f"stripe/{name}"))
    [event] = run("stripe", name)
    assert event.name == f"stripe/{source['type']}"
    assert event.id == f"stripe-{source['id']}"
    assert event.ts == source["created"] * 1000
    assert event.v == source["api_version"]
    assert event.data == source  # the whole Stripe event


def test_stripe_keeps_previous_attributes_and_connect_account() -> None:
    [updated] = run("stripe", "customer.updated.json")
    assert updated.data["data"]["previous_attributes"] == {"email": "jennyrosen@example.com"}
    [connect] = run("stripe", "connect.account.updated.json")
    assert connect.data["account"] == "acct_1032D82eZvKYlo2C"
    assert connect.data["livemode"] is True


def test_stripe_thin_event() -> None:
    [event] = run("stripe", "thin.meter_error.json")
    assert event.name == "stripe/v1.billing.meter.error_report_triggered"
    assert event.id == "stripe-evt_test_65R9Ijk8e8cTBXXfjX916R9Ijk8eSQ"
    assert event.ts == 1644884865330  # 2022-02-15T00:27:45.330Z
    assert event.v is None
    assert event.data["related_object"]["id"] == "mtr_test_61R9Ijk8eSQ"


def test_slack_event_callback() -> None:
    [event] = run("slack", "message.json")
    assert event.name == "slack/message"
    assert event.id == "slack-Ev08MFMKH6"
    assert event.ts == 1355517523000
    assert event.data["event"]["text"] == "Live long and prospect."
    assert event.data["team_id"] == "T123ABC456"


def test_slack_subtype_in_name() -> None:
    [event] = run("slack", "message.bot_message.json")
    assert event.name == "slack/message.bot_message"
    assert event.id == "slack-Ev08MFMKH7"
    [mention] = run("slack", "app_mention.json")
    assert (mention.name, mention.id, mention.ts) == (
        "slack/app_mention",
        "slack-Ev0LAN670R",
        1515449522000,
    )


def test_slack_app_rate_limited_becomes_an_event() -> None:
    [event] = run("slack", "app_rate_limited.json")
    assert event.name == "slack/app_rate_limited"
    assert event.id == "slack-rate-limited-T123456-1518467820"
    assert event.ts == 1518467820000
    assert event.data["minute_rate_limited"] == 1518467820


def test_slack_url_verification_is_not_an_event() -> None:
    assert run("slack", "url_verification.json") == []


def test_slack_interactivity() -> None:
    [actions] = run("slack", "block_actions.form")
    assert actions.name == "slack/block_actions"
    assert actions.id == "slack-12466734323.1395872398.1d7c1b8cb6fd5f5d3c8a5a1e2b7e5b2f"
    assert actions.ts == 1548426417840
    assert actions.data["actions"][0]["value"] == "click_me_123"
    [view] = run("slack", "view_submission.form")
    assert (view.name, view.id) == ("slack/view_submission", "slack-12345.98765.abcd2358fdea")
    assert view.ts == int(RECEIVED * 1000)
    [shortcut] = run("slack", "shortcut.form")
    assert shortcut.name == "slack/shortcut"
    assert shortcut.id == "slack-944799105734.773906753841.38b5894552bdd4a780554ee59d1f3638"
    assert shortcut.ts == 1581106241371


def test_slack_slash_command() -> None:
    [event] = run("slack", "slash_command.form")
    assert event.name == "slack/command.invoked"
    assert event.id == "slack-13345224609.738474920.8088930838d88f008e0"
    assert event.ts == int(RECEIVED * 1000)
    assert event.data["command"] == "/weather"
    assert event.data["text"] == "94070"
    assert event.data["user_id"] == "U2147483697"
    assert event.data["channel_id"] == "C2147483705"
    assert event.data["response_url"] == "https://hooks.slack.com/commands/1234/5678"
    assert "token" not in event.data  # the verification token is not forwarded


def test_intercom_notification() -> None:
    source = json.loads(fixture("intercom/conversation.user.created.json"))
    [event] = run("intercom", "conversation.user.created.json")
    assert event.name == "intercom/conversation.user.created"
    assert event.id == "intercom-notif_4b4b8a8e-8b5e-4f77-8c8a-6c2a6f0c9d3e"
    assert event.ts == 1531390873000
    assert event.data == source


def test_intercom_ping_is_not_an_event_and_null_id_is_not_used() -> None:
    assert run("intercom", "ping.json") == []
    body = json.loads(fixture("intercom/conversation.user.created.json"))
    body["id"] = None
    webhook = Webhook(source="intercom", provider="intercom", body=json.dumps(body).encode())
    [event] = run_transform(load_registry().get("intercom"), webhook, prefix="intercom").events
    assert event.id is None
