"""SendGrid Event Webhook batches become one ``sendgrid/email.<event>`` event per item.

- ``name``: ``"sendgrid/email." + event`` (``processed``, ``delivered``, ``open``, ``click``,
  ``bounce``, ``dropped``, ``deferred``, ``spamreport``, ``unsubscribe``, ``group_unsubscribe``,
  ``group_resubscribe``).
- ``id``: ``"sendgrid-" + sg_event_id`` (unique per event; SendGrid retries keep it).
- ``ts``: ``timestamp`` (Unix seconds) in ms.
- ``data``: the item.
"""

from __future__ import annotations

import re

from gateway import Event, Webhook, transform
from transforms.hmac import _ms

_SNAKE = re.compile(r"[^a-z0-9]+")


@transform("sendgrid")
def sendgrid(webhook: Webhook) -> list[Event]:
    """One SendGrid batch -> one event per item."""
    items = webhook.json
    if not isinstance(items, list):
        raise ValueError("a SendGrid body is a JSON array")
    events = []
    for item in items:
        kind = item.get("event") if isinstance(item, dict) else None
        if not isinstance(kind, str) or not kind:
            raise ValueError("each SendGrid item has an event")
        event_id = item.get("sg_event_id")
        events.append(
            Event(
                name="sendgrid/email." + _SNAKE.sub("_", kind.lower()).strip("_"),
                id=f"sendgrid-{event_id}" if event_id else None,
                ts=_ms(item.get("timestamp")) or webhook.received_at_ms or None,
                data=item,
            )
        )
    return events
