"""The one way the built-in transforms read event times (``transforms._time``)."""

from __future__ import annotations

import json

import pytest

from gateway import Webhook
from transforms._time import to_ms, utc_ms
from transforms.standard import standard

MS = 1_714_557_600_000  # 2024-05-01T10:00:00Z


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T10:00:00Z", MS),
        ("2024-05-01T12:00:00+02:00", MS),
        (1_714_557_600, MS),
        (MS, MS),
        (1_714_557_600.5, MS + 500),
        ("1714557600", MS),
        ("2024-05-01T10:00:00", None),  # no offset: unknown zone
        (True, None),
        (10**400, None),  # beyond a float
        (float("inf"), None),
        (0, None),  # before 1980: not an event time
        ("soon", None),
        (None, None),
    ],
)
def test_to_ms(value: object, expected: int | None) -> None:
    assert to_ms(value) == expected


def test_digit_strings_count_only_when_numeric_text_is_allowed() -> None:
    assert to_ms("1714557600", numeric_text=False) is None
    assert to_ms("2024-05-01T10:00:00Z", numeric_text=False) == MS
    assert to_ms(1_714_557_600, numeric_text=False) == MS


def test_utc_ms_reads_a_time_without_offset_as_utc() -> None:
    assert utc_ms("2024-05-01T10:00:00") == MS
    assert utc_ms("2024-05-01T12:00:00+02:00") == MS
    assert utc_ms(1_714_557_600) == MS
    assert utc_ms("not a time") is None


def test_a_standard_webhooks_timestamp_beyond_a_float_falls_back_to_the_receive_time() -> None:
    """It raised OverflowError (the message quarantined) before the two time readers became one."""
    body = json.dumps({"type": "user.created", "timestamp": 10**400, "data": {}}).encode()
    webhook = Webhook(source="clerk", provider="standard", body=body, received_at=1_714_557_601)
    assert standard(webhook).ts == MS + 1000
