"""Event times the built-in transforms share: Unix ms from the forms senders write them in."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

_MS_THRESHOLD = 10**11  # larger Unix numbers are milliseconds (10**11 s is the year 5138)
_MIN_TS_MS, _MAX_TS_MS = 315_532_800_000, 4_102_444_800_000  # 1980..2100: the Event API's range


def to_ms(value: Any, *, numeric_text: bool = True) -> int | None:
    """Unix ms from an ISO-8601 string with an offset or a Unix number (s or ms); ``None`` if
    unusable or outside 1980..2100. A string of digits is a Unix number unless ``numeric_text``
    is false (then only ISO-8601 text counts, as the Standard Webhooks spec writes times)."""
    result: int | None = None
    if isinstance(value, str) and not (numeric_text and value.isdigit()):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is not None:
            result = int(moment.timestamp() * 1000)
    elif isinstance(value, str | int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except (OverflowError, ValueError):  # an integer beyond a float, or text that is none
            return None
        if math.isfinite(number):
            result = int(number if number >= _MS_THRESHOLD else number * 1000)
    return result if result is not None and _MIN_TS_MS <= result <= _MAX_TS_MS else None


def utc_ms(value: Any) -> int | None:
    """:func:`to_ms`, reading an ISO-8601 time without an offset as UTC (Discord, Xero)."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            value = moment.replace(tzinfo=UTC).isoformat()
    return to_ms(value)
