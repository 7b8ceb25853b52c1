"""Postmark webhooks become ``postmark/<noun>.<verb>`` events from ``RecordType``.

- ``name``: ``Delivery`` -> ``postmark/message.delivered``, ``Bounce`` -> ``message.bounced``,
  ``SpamComplaint`` -> ``message.complained``, ``Open`` -> ``message.opened``, ``Click`` ->
  ``message.clicked``, ``SubscriptionChange`` -> ``subscription.changed``, an inbound message (no
  ``RecordType``) -> ``inbound.received``; another type -> ``message.<type in snake case>``.
- ``id``: ``"postmark-" + X-PM-Webhook-Trace-Id`` (stable across an event's retries), else
  ``"postmark-" + RecordType-MessageID-recipient-time`` (a message has one delivery per
  recipient, and opens and clicks repeat).
- ``ts``: ``DeliveredAt`` / ``BouncedAt`` / ``ReceivedAt`` / ``ChangedAt`` (ISO-8601), an inbound
  message's ``Date`` (RFC 2822), else the receive time.
- ``data``: the payload.
"""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime
from typing import Any

from gateway import Event, Webhook, transform
from gateway.providers.postmark import RECORD_TYPES, TRACE_HEADER, record_key, record_type
from transforms._time import to_ms

_SNAKE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|[^A-Za-z0-9]+")


def _time(value: Any) -> int | None:
    ms = to_ms(value)
    if ms is None and isinstance(value, str):
        try:
            ms = to_ms(parsedate_to_datetime(value).isoformat())
        except (TypeError, ValueError):
            return None
    return ms


@transform("postmark")
def postmark(webhook: Webhook) -> Event:
    """One Postmark record -> one event."""
    payload = webhook.json
    kind = record_type(payload) if isinstance(payload, dict) else ""
    if not kind:
        raise ValueError("a Postmark webhook has a RecordType")
    snake = _SNAKE.sub("_", kind).strip("_").lower()
    name, time_field = RECORD_TYPES.get(kind, (f"message.{snake}", "ReceivedAt"))
    key = record_key(payload, webhook.header(TRACE_HEADER))
    return Event(
        name="postmark/" + name,
        id=f"postmark-{key}" if key else None,
        ts=_time(payload.get(time_field)) or webhook.received_at_ms or None,
        data=payload,
    )
