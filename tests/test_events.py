"""The Event model and the naming convention."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pydantic import BaseModel, ValidationError

from gateway.events import Event, follows_convention


def test_minimal_event_and_payload() -> None:
    event = Event(name="stripe/customer.created", data={"a": 1})
    assert event.to_payload() == {"name": "stripe/customer.created", "data": {"a": 1}}
    full = Event(name="a/b.c", data={}, id="a-1", ts=1_700_000_000_000, v="2023-10-16")
    assert full.to_json() == (
        b'{"name":"a/b.c","data":{},"id":"a-1","ts":1700000000000,"v":"2023-10-16"}'
    )


class _Inner(BaseModel):
    when: datetime


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"a": None, "nested": {"b": None, "list": [1, 2.5, None, True, "x"]}},
        {"tuple": (1, 2), "when": datetime(2024, 6, 1, tzinfo=UTC), "big": 2**63 - 1},
        {"model": _Inner(when=datetime(2024, 6, 1, tzinfo=UTC))},  # only model_dump converts it
    ],
)
def test_to_json_is_the_payload_serialized(data: dict[str, Any]) -> None:
    for event in (Event(name="a/b.c", data=data), Event(name="a/b.c", data=data, id="i", v="1")):
        assert event.to_json() == orjson.dumps(event.to_payload())


# 2**64 is JSON, kept exact since issue 13 point 15 (tests/test_big_integers.py)
@pytest.mark.parametrize("value", [{1, 2}, b"raw", {1: "int key"}, [2**64, {1, 2}]])
def test_to_json_refuses_what_is_not_json(value: object) -> None:
    with pytest.raises(TypeError):
        Event(name="a/b.c", data={"x": value}).to_json()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": ""}, "non-empty"),
        ({"name": "   "}, "non-empty"),
        ({"name": "x" * 257}, "longer than 256"),
        ({"name": "inngest/function.failed"}, "reserved"),
        ({"name": "Inngest/anything"}, "reserved"),
        ({"name": 5}, "string"),
        ({"name": "a/b", "data": [1]}, "dictionary"),
        ({"name": "a/b", "data": "x"}, "dictionary"),
        ({"name": "a/b", "id": 5}, "string"),
        ({"name": "a/b", "id": ""}, "non-empty"),
        ({"name": "a/b", "ts": 1.5}, "integer"),
        ({"name": "a/b", "ts": "1700000000000"}, "integer"),
        ({"name": "a/b", "ts": 1_700_000_000}, "between 1980 and 2100"),
        ({"name": "a/b", "v": 2}, "string"),
        ({"name": "a/b", "extra": 1}, "Extra inputs"),
    ],
)
def test_invalid_events_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Event(**fields)  # type: ignore[arg-type]


def test_event_is_read_only() -> None:
    event = Event(name="a/b")
    with pytest.raises(ValidationError):
        event.name = "c/d"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "prefix", "ok"),
    [
        ("stripe/customer.created", "stripe", True),
        ("stripe/customer.subscription.updated", "stripe", True),
        ("slack/app_mention", "slack", True),
        ("slack/message.bot_message", "slack", True),
        ("stripe/v1.billing.meter.error_report_triggered", "stripe", True),
        ("slack/customer.created", "stripe", False),
        ("stripe/Customer.Created", "stripe", False),
        ("stripe/customer created", "stripe", False),
        ("stripe/", "stripe", False),
        ("customer.created", "stripe", False),
        ("stripe/customer..created", "stripe", False),
    ],
)
def test_convention(name: str, prefix: str, ok: bool) -> None:
    assert follows_convention(name, prefix) is ok
