"""The built-in Stripe mapping, field by field, on full Stripe event payloads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway import Event, TransformError, Webhook
from gateway.plugins import load_registry
from gateway.transform_runner import TransformOutcome, run_transform

FIXTURES = Path(__file__).parent / "fixtures" / "transforms" / "stripe"
RECEIVED = 1_724_940_000.25


def body(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def run(raw: bytes, *, strict_names: bool = False) -> TransformOutcome:
    webhook = Webhook(source="stripe", provider="stripe", body=raw, received_at=RECEIVED)
    func = load_registry().get("stripe")
    return run_transform(func, webhook, prefix="stripe", strict_names=strict_names)


@pytest.mark.parametrize(
    ("fixture", "name", "event_id", "ts"),
    [
        (
            "customer.created.json",
            "stripe/customer.created",
            "stripe-evt_1PtD6HKX3nVq0sEhY7m2bQ4e",
            1_724_932_873_000,
        ),
        (
            "customer.updated.json",
            "stripe/customer.updated",
            "stripe-evt_1PtDBnKX3nVq0sEh0a6NrKcL",
            1_724_933_211_000,
        ),
        (
            "invoice.paid.json",
            "stripe/invoice.paid",
            "stripe-evt_1PtE0TKX3nVq0sEhc9uD5yRw",
            1_724_936_397_000,
        ),
        (
            "checkout.session.completed.json",
            "stripe/checkout.session.completed",
            "stripe-evt_1PtEAhKX3nVq0sEhW2jH3Zq8",
            1_724_937_043_000,
        ),
        (
            "connect.payment_intent.succeeded.json",
            "stripe/payment_intent.succeeded",
            "stripe-evt_3PtEKsFz7bQ1eLmN0VxY1kQe",
            1_724_937_662_000,
        ),
    ],
)
def test_snapshot_event(fixture: str, name: str, event_id: str, ts: int) -> None:
    outcome = run(body(fixture))
    [event] = outcome.events
    assert event.name == name
    assert event.id == event_id
    assert event.ts == ts
    assert event.v == "2024-06-20"
    assert event.data == json.loads(body(fixture))  # the whole Stripe event, untouched
    assert outcome.convention_warnings == []
    assert orjson.loads(outcome.payloads[0]) == {
        "name": name,
        "id": event_id,
        "ts": ts,
        "v": "2024-06-20",
        "data": json.loads(body(fixture)),
    }


def test_updated_event_keeps_previous_attributes() -> None:
    [event] = run(body("customer.updated.json")).events
    assert event.data["data"]["previous_attributes"] == {
        "email": "jenny.rosen@example.com",
        "name": "Jenny Rosen",
    }
    assert event.data["data"]["object"]["email"] == "jenny@rosen.example"


def test_connect_event_keeps_the_account() -> None:
    [event] = run(body("connect.payment_intent.succeeded.json")).events
    assert event.data["account"] == "acct_1Nv9JzFz7bQ1eLmN"
    assert event.data["livemode"] is True
    assert event.data["data"]["object"]["application_fee_amount"] == 625


def test_null_api_version_is_left_out() -> None:
    source: dict[str, Any] = json.loads(body("customer.created.json"))
    source["api_version"] = None
    outcome = run(json.dumps(source).encode())
    assert outcome.events[0].v is None
    assert "v" not in orjson.loads(outcome.payloads[0])


def test_thin_event() -> None:
    outcome = run(body("thin.v1.billing.meter.error_report_triggered.json"))
    [event] = outcome.events
    assert event.name == "stripe/v1.billing.meter.error_report_triggered"
    assert event.id == "stripe-evt_test_65R9Ijk8e8cTBXXfjX916R9Ijk8eSQXiwvjFrAcM1MdXW"
    assert event.ts == 1_644_884_865_330  # 2022-02-15T00:27:45.330Z
    assert event.v is None
    assert event.data == json.loads(body("thin.v1.billing.meter.error_report_triggered.json"))
    assert event.data["context"] == "acct_123"
    assert event.data["related_object"]["type"] == "billing.meter"
    assert "v" not in orjson.loads(outcome.payloads[0])
    assert outcome.convention_warnings == []


def test_thin_event_with_brackets_in_its_type_warns() -> None:
    """Accounts v2 types such as ``v2.core.account[requirements].updated`` keep their name."""
    outcome = run(body("thin.v2.core.account_requirements.updated.json"))
    [event] = outcome.events
    assert event.name == "stripe/v2.core.account[requirements].updated"
    assert event.ts == 1_746_032_531_904  # 2025-04-30T17:02:11.904Z
    assert outcome.convention_warnings == [
        "event name 'stripe/v2.core.account[requirements].updated' does not follow the "
        "convention 'stripe/noun.verb'"
    ]
    with pytest.raises(TransformError, match="does not follow the convention"):
        run(body("thin.v2.core.account_requirements.updated.json"), strict_names=True)


def test_missing_created_falls_back_to_receive_time() -> None:
    source: dict[str, Any] = json.loads(body("customer.created.json"))
    del source["created"]
    [event] = run(json.dumps(source).encode()).events
    assert event.ts == 1_724_940_000_250


@pytest.mark.parametrize("raw", [b'{"object": "event", "id": "evt_1"}', b"[1, 2]", b"not json"])
def test_not_a_stripe_event_is_a_transform_error(raw: bytes) -> None:
    with pytest.raises(TransformError, match="transform raised") as info:
        run(raw)
    assert info.value.detail is not None
    assert "transforms/stripe.py" in info.value.detail


def test_bracketed_type_rewritten_as_docs_suggest_passes_strict_names() -> None:
    """docs/mappings.md shows this rewrite for users of ``strict_names``."""
    from transforms.stripe import stripe

    def strict_stripe(webhook: Webhook) -> Event:
        event = stripe(webhook)
        name = event.name.replace("[", ".").replace("]", "")
        return event.model_copy(update={"name": name})

    raw = body("thin.v2.core.account_requirements.updated.json")
    webhook = Webhook(source="stripe", provider="stripe", body=raw, received_at=RECEIVED)
    [event] = run_transform(strict_stripe, webhook, prefix="stripe", strict_names=True).events
    assert event.name == "stripe/v2.core.account.requirements.updated"
