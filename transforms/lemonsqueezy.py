"""Lemon Squeezy webhooks become ``lemonsqueezy/<noun>.<verb>`` events.

- ``name``: ``meta.event_name`` (else the ``X-Event-Name`` header) with its last ``_`` as the dot:
  ``order_created`` -> ``lemonsqueezy/order.created``, ``subscription_payment_success`` ->
  ``subscription_payment.success``, ``license_key_created`` -> ``license_key.created``.
- ``id``: ``"lemonsqueezy-" + event_name-data.type-data.id-updated_at`` (no event id is sent).
- ``ts``: ``data.attributes.updated_at``, else ``created_at``, else the receive time.
- ``data``: the payload (``meta`` and ``data``).
"""

from __future__ import annotations

import re

from gateway import Event, Webhook, transform
from gateway.providers.lemonsqueezy import changed_at, event_key
from transforms._time import to_ms

_EVENT = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)+")


@transform("lemonsqueezy")
def lemonsqueezy(webhook: Webhook) -> Event:
    """One Lemon Squeezy webhook -> one event."""
    payload = webhook.json
    meta = payload.get("meta") if isinstance(payload, dict) else None
    event = meta.get("event_name") if isinstance(meta, dict) else None
    event = event or webhook.header("x-event-name")
    if not isinstance(event, str) or not _EVENT.fullmatch(event):
        raise ValueError("a Lemon Squeezy webhook has an event_name like order_created")
    noun, _, verb = event.rpartition("_")
    key = event_key(payload, event)
    return Event(
        name=f"lemonsqueezy/{noun}.{verb}",
        id=f"lemonsqueezy-{key}" if key else None,
        ts=to_ms(changed_at(payload)) or webhook.received_at_ms or None,
        data=payload,
    )
