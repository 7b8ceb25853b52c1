"""Standard Webhooks messages become ``<source>/<type>`` events.

One provider serves many senders (Clerk, Resend, any Svix customer), so the prefix is the
source's ``prefix`` from the config file, which defaults to the *source's name*, not the
provider's: ``prefix = "clerk"`` (or a source named ``clerk``) yields ``clerk/user.created``; the
zero-config source ``standard`` yields ``standard/<type>``.

- ``name``: ``prefix + "/" + type``.
- ``id``: ``prefix + "-" + webhook-id`` (or ``svix-id``): the message id, kept on retries.
- ``ts``: the payload's ``timestamp`` (the spec's ISO-8601 string, or a Unix number in seconds or
  milliseconds as Clerk sends), else the receive time.
- ``data``: the whole payload (``type``, ``timestamp``, ``data`` and any sender extras such as
  Clerk's ``instance_id``).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from gateway import Event, Webhook, transform

_MS_THRESHOLD = 10**11  # larger Unix numbers are milliseconds (10**11 s is the year 5138)
_MIN_TS_MS, _MAX_TS_MS = 315_532_800_000, 4_102_444_800_000  # 1980..2100: the Event API's range


def _ms(value: Any) -> int | None:
    """Unix ms from an ISO-8601 string or a Unix number (s or ms); None if unusable."""
    ms: int | None = None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is not None:
            ms = int(moment.timestamp() * 1000)
    elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        ms = int(value if value >= _MS_THRESHOLD else value * 1000)
    return ms if ms is not None and _MIN_TS_MS <= ms <= _MAX_TS_MS else None


@transform("standard")
def standard(webhook: Webhook) -> Event:
    """One Standard Webhooks message -> one event named after its source."""
    payload = webhook.json
    if not isinstance(payload, dict):
        raise ValueError("a Standard Webhooks payload is a JSON object")
    kind = payload.get("type")
    if not isinstance(kind, str) or not kind:
        raise ValueError("a Standard Webhooks payload has a non-empty string 'type'")
    msg_id = webhook.header("webhook-id") or webhook.header("svix-id")
    prefix = webhook.prefix or webhook.source
    return Event(
        name=f"{prefix}/{kind}",
        id=f"{prefix}-{msg_id}" if msg_id else None,
        ts=_ms(payload.get("timestamp")) or webhook.received_at_ms or None,
        data=payload,
    )
