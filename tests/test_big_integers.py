"""Issue 13, point 15: integers beyond 64 bits in a verified body reach the Event API exactly.

orjson parses such integers as floats and refuses to serialize them; the gateway re-parses the
few bodies that may hold one with the standard library and serializes such events with it.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from gateway.events import Event
from gateway.webhook import PayloadError, Webhook, json_object
from tests.eventapi_standin import event_api
from tests.helpers import STRIPE_SECRET, fixture, make_config
from tests.server import run_gateway
from tests.signing import stripe_headers
from tests.test_metrics_catalogue import value

HUGE = 123456789012345678901234567890
BELOW_I64 = -9999999999999999999  # 19 digits, below -2**63
U64_MAX = 2**64 - 1


def body_with(**numbers: object) -> bytes:
    event = json.loads(fixture("stripe/customer.created.json"))
    event["id"] = f"evt_big_{len(str(numbers))}_{sorted(numbers)[0]}"
    event["data"]["object"]["metadata"] = numbers
    return json.dumps(event).encode()


def test_webhook_json_keeps_integers_beyond_64_bits_exact() -> None:
    body = body_with(huge=HUGE, low=BELOW_I64, max=U64_MAX, f=1.5, s="12345678901234567890123")
    parsed = Webhook(source="s", provider="stripe", body=body).json
    metadata = parsed["data"]["object"]["metadata"]
    assert metadata == {
        "huge": HUGE,
        "low": BELOW_I64,
        "max": U64_MAX,
        "f": 1.5,
        "s": "12345678901234567890123",
    }
    assert all(type(metadata[k]) is int for k in ("huge", "low", "max"))
    assert json_object(b'{"n": %d}' % HUGE, "field")["n"] == HUGE


def test_event_with_integers_beyond_64_bits_serializes_exactly() -> None:
    event = Event(name="stripe/x.y", data={"n": HUGE, "neg": -HUGE, "t": "é", "f": 0.25})
    assert json.loads(event.to_json()) == event.to_payload()
    assert str(HUGE).encode() in event.to_json()
    with pytest.raises(TypeError):  # what orjson refuses for another reason is still refused
        Event(name="stripe/x.y", data={"n": HUGE, "s": {1, 2}}).to_json()


def test_absurdly_long_integer_is_a_clear_payload_error() -> None:
    body = b'{"n": ' + b"7" * 5000 + b"}"
    with pytest.raises(PayloadError, match="digits"):
        _ = Webhook(source="s", provider="stripe", body=body).json


def test_big_integers_are_forwarded_exactly_and_absurd_ones_refused(tmp_path: Path) -> None:
    exact = body_with(huge=HUGE, low=BELOW_I64)
    absurd = body_with(n=0).replace(b'"n": 0', b'"n": ' + b"9" * 5000)
    with event_api() as api, run_gateway(make_config(tmp_path, api.url)) as gw:
        with httpx.Client(base_url=gw.url, timeout=10) as client:
            ok = client.post(
                "/webhooks/stripe", content=exact, headers=stripe_headers(exact, STRIPE_SECRET)
            )
            assert ok.status_code == 200 and ok.json()["status"] == "accepted", ok.text
            refused = client.post(
                "/webhooks/stripe", content=absurd, headers=stripe_headers(absurd, STRIPE_SECRET)
            )
            assert refused.status_code == 400, refused.text
            assert refused.json()["reason"] == "invalid_payload"
            assert "digits" in refused.json()["error"]
            assert api.wait_for_events(1, timeout=20)
            metrics = client.get("/metrics").text
        raw = api.raw_events[0]
    assert f'"huge":{HUGE}'.encode() in raw.replace(b" ", b"")
    assert f'"low":{BELOW_I64}'.encode() in raw.replace(b" ", b"")
    metadata = json.loads(raw)["data"]["data"]["object"]["metadata"]
    assert metadata == {"huge": HUGE, "low": BELOW_I64}
    rejected = "webhook_gateway_webhooks_rejected_total"
    assert value(metrics, rejected, source="stripe", reason="invalid_payload") == 1
