"""HubSpot webhook batches become one ``hubspot/<object>.<change>`` event per item.

- ``name``: ``"hubspot/" + subscriptionType`` in snake case (``contact.creation`` ->
  ``hubspot/contact.creation``, ``contact.propertyChange`` -> ``hubspot/contact.property_change``).
- ``id``: ``"hubspot-" + eventId`` (the same on HubSpot's retries).
- ``ts``: ``occurredAt`` (ms).
- ``data``: the item.
"""

from __future__ import annotations

import re

from gateway import Event, Webhook, transform
from transforms.hmac import _ms

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def snake(text: str) -> str:
    """``propertyChange`` -> ``property_change``; dots kept."""
    return _CAMEL.sub("_", text).lower().replace("-", "_")


@transform("hubspot")
def hubspot(webhook: Webhook) -> list[Event]:
    """One HubSpot batch -> one event per item."""
    items = webhook.json
    if not isinstance(items, list):
        raise ValueError("a HubSpot body is a JSON array")
    events = []
    for item in items:
        kind = item.get("subscriptionType") if isinstance(item, dict) else None
        if not isinstance(kind, str) or "." not in kind:
            raise ValueError("each HubSpot item has a subscriptionType like contact.creation")
        event_id = item.get("eventId")
        events.append(
            Event(
                name="hubspot/" + snake(kind),
                id=f"hubspot-{event_id}" if event_id is not None else None,
                ts=_ms(item.get("occurredAt")) or webhook.received_at_ms or None,
                data=item,
            )
        )
    return events
