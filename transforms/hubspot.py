"""HubSpot webhook batches become one ``hubspot/<object>.<change>`` event per item.

- ``name``: ``"hubspot/" + subscriptionType`` in snake case (``contact.creation`` ->
  ``hubspot/contact.creation``, ``contact.propertyChange`` -> ``hubspot/contact.property_change``).
- ``id``: ``"hubspot-" + eventId`` (the same on HubSpot's retries).
- ``ts``: ``occurredAt`` (ms).
- ``data``: the item.
"""

from __future__ import annotations

from typing import Any

from gateway import Event, Webhook, transform
from transforms._naming import camel_snake
from transforms._typed import per_item


def _name(item: dict[str, Any]) -> str:
    kind = item.get("subscriptionType")
    if not isinstance(kind, str) or "." not in kind:
        raise ValueError("each HubSpot item has a subscriptionType like contact.creation")
    return "hubspot/" + camel_snake(kind)


@transform("hubspot")
def hubspot(webhook: Webhook) -> list[Event]:
    """One HubSpot batch -> one event per item."""
    return per_item(webhook, "hubspot", _name, "eventId", "occurredAt")
