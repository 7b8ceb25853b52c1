"""The worked example of docs/plugins.md: loaded from its directory, run on full fixtures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gateway import Event, Webhook
from gateway.plugins import load_registry
from gateway.transform_runner import TransformOutcome, run_transform

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "transforms"
EXAMPLE = EXAMPLES / "stripe_billing.py"
FIXTURES = Path(__file__).parent / "fixtures" / "transforms" / "stripe"


def run(fixture: str) -> TransformOutcome:
    body = (FIXTURES / fixture).read_bytes()
    webhook = Webhook(source="stripe", provider="stripe", body=body, received_at=1.7e9)
    registry = load_registry(EXAMPLES)
    return run_transform(registry.get("stripe-billing"), webhook, prefix="stripe")


def test_example_is_loaded_from_the_directory() -> None:
    assert dict(load_registry(EXAMPLES).items())["stripe-billing"] == f"directory {EXAMPLE}"


def test_paid_invoice_fans_out_a_revenue_event() -> None:
    outcome = run("invoice.paid.json")
    invoice, revenue = outcome.events
    assert invoice == Event(
        name="stripe/invoice.paid",
        id="stripe-evt_1PtE0TKX3nVq0sEhc9uD5yRw",
        ts=1_724_936_397_000,
        v="2024-06-20",
        data=json.loads((FIXTURES / "invoice.paid.json").read_bytes()),
    )
    assert revenue.name == "stripe/revenue.recorded"
    assert revenue.id == "stripe-evt_1PtE0TKX3nVq0sEhc9uD5yRw-revenue"
    assert revenue.ts == 1_724_936_397_000
    assert revenue.v is None
    assert revenue.data == {"customer": "cus_QhXjZ5uM0dUvq2", "amount": 2000, "currency": "usd"}
    assert outcome.convention_warnings == []


def test_connect_events_are_renamed() -> None:
    [event] = run("connect.payment_intent.succeeded.json").events
    assert event.name == "stripe/connect.payment_intent.succeeded"
    assert event.id == "stripe-evt_3PtEKsFz7bQ1eLmN0VxY1kQe"
    assert event.data["account"] == "acct_1Nv9JzFz7bQ1eLmN"


def test_other_billing_events_pass_through() -> None:
    [event] = run("customer.updated.json").events
    assert (event.name, event.id) == (
        "stripe/customer.updated",
        "stripe-evt_1PtDBnKX3nVq0sEh0a6NrKcL",
    )


@pytest.mark.parametrize(
    "fixture",
    ["checkout.session.completed.json", "thin.v1.billing.meter.error_report_triggered.json"],
)
def test_everything_else_is_filtered(fixture: str) -> None:
    outcome = run(fixture)
    assert (outcome.events, outcome.payloads) == ([], [])


def test_docs_show_the_example_verbatim() -> None:
    docs = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", docs, flags=re.DOTALL)
    assert EXAMPLE.read_text(encoding="utf-8") in blocks
