"""PagerDuty v3 webhooks become ``pagerduty/<event_type>`` events (PagerDuty's types are
already ``noun.verb``).

- ``name``: ``"pagerduty/" + event.event_type`` (``pagerduty/incident.triggered``,
  ``pagerduty/incident.responder.added``; the test event is ``pagerduty/pagey.ping``).
- ``id``: ``"pagerduty-" + event.id``.
- ``ts``: ``event.occurred_at``, else the receive time.
- ``data``: the payload (``{"event": {...}}``).
"""

from __future__ import annotations

from gateway import Event, Webhook, transform
from transforms._naming import dotted
from transforms._time import to_ms


@transform("pagerduty")
def pagerduty(webhook: Webhook) -> Event:
    """One PagerDuty v3 webhook -> one event."""
    payload = webhook.json
    event = payload.get("event") if isinstance(payload, dict) else None
    if not isinstance(event, dict):
        raise ValueError("a PagerDuty v3 body has an event object")
    noun_verb = dotted(event.get("event_type"))
    if noun_verb is None:
        raise ValueError("a PagerDuty v3 event has an event_type like incident.triggered")
    event_id = event.get("id")
    return Event(
        name="pagerduty/" + noun_verb,
        id=f"pagerduty-{event_id}" if isinstance(event_id, str) and event_id else None,
        ts=to_ms(event.get("occurred_at")) or webhook.received_at_ms or None,
        data=payload,
    )
