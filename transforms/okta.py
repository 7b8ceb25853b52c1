"""Okta event hook deliveries become one ``okta/<eventType>`` event per System Log event.

- ``name``: ``"okta/" + eventType`` (Okta's types are already dotted: ``okta/user.session.start``,
  ``okta/user.lifecycle.deactivate``).
- ``id``: ``"okta-" + uuid`` (the event's id, which Okta's docs say to dedup on; the delivery's
  ``eventId`` covers several events).
- ``ts``: ``published`` (ISO-8601), else the delivery's ``eventTime``.
- ``data``: the event (a System Log ``LogEvent``).
"""

from __future__ import annotations

from typing import Any

from gateway import Event, Webhook, transform
from transforms._time import to_ms


def _name(event: dict[str, Any]) -> str:
    kind = event.get("eventType")
    if not isinstance(kind, str) or not kind:
        raise ValueError("each Okta event has an eventType")
    return "okta/" + kind


@transform("okta")
def okta(webhook: Webhook) -> list[Event]:
    """One Okta delivery -> one event per item of ``data.events``."""
    payload = webhook.json
    data = payload.get("data") if isinstance(payload, dict) else None
    events = data.get("events") if isinstance(data, dict) else None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise ValueError("an Okta delivery has data.events, a list of objects")
    sent = to_ms(payload.get("eventTime"))
    return [
        Event(
            name=_name(event),
            id=f"okta-{event['uuid']}" if event.get("uuid") else None,
            ts=to_ms(event.get("published")) or sent or webhook.received_at_ms or None,
            data=event,
        )
        for event in events
    ]
