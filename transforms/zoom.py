"""Zoom events become ``zoom/<event>`` events (Zoom's names are already ``noun.verb``).

- ``name``: ``"zoom/" + event`` (``zoom/meeting.started``, ``zoom/meeting.participant_joined``).
- ``id``: ``"zoom-" + event + "-" + event_ts + "-" + payload.object.uuid`` (or ``.id``).
- ``ts``: ``event_ts`` (ms).
- ``data``: the whole body (``event``, ``event_ts``, ``payload``).

``endpoint.url_validation`` is answered by the provider and never reaches the transform.
"""

from __future__ import annotations

from gateway import Event, Webhook, transform
from gateway.providers.zoom import event_key
from transforms._time import to_ms


@transform("zoom")
def zoom(webhook: Webhook) -> Event:
    """One Zoom event -> one event."""
    payload = webhook.json
    event = payload.get("event") if isinstance(payload, dict) else None
    if not isinstance(event, str) or "." not in event:
        raise ValueError("a Zoom event has an event like meeting.started")
    key = event_key(payload)
    return Event(
        name="zoom/" + event.lower(),
        id=f"zoom-{key}" if key else None,
        ts=to_ms(payload.get("event_ts")) or webhook.received_at_ms or None,
        data=payload,
    )
