"""Mailgun events become ``mailgun/message.<event>`` events.

- ``name``: ``"mailgun/message." + event-data.event`` in lower snake case (``delivered``,
  ``opened``, ``clicked``, ``failed``, ``accepted``, ``complained``, ``unsubscribed``, ...):
  every Mailgun event is about one message; ``failed`` keeps its ``severity`` in the data.
- ``id``: ``"mailgun-" + event-data.id`` (Mailgun's event id).
- ``ts``: ``event-data.timestamp`` (Unix seconds with a fraction) in ms.
- ``data``: ``event-data`` (the ``signature`` object is not forwarded).
"""

from __future__ import annotations

from gateway import Event, Webhook, transform
from transforms._naming import snake
from transforms._time import to_ms


@transform("mailgun")
def mailgun(webhook: Webhook) -> Event:
    """One Mailgun webhook -> one event."""
    payload = webhook.json
    data = payload.get("event-data") if isinstance(payload, dict) else None
    kind = data.get("event") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(kind, str) or not kind.strip():
        raise ValueError("a Mailgun webhook has event-data with an event")
    ident = data.get("id")
    return Event(
        name="mailgun/message." + snake(kind),
        id=f"mailgun-{ident}" if isinstance(ident, str) and ident else None,
        ts=to_ms(data.get("timestamp")) or webhook.received_at_ms or None,
        data=data,
    )
