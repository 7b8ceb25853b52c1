"""HubSpot webhook batches become one ``hubspot/<object>.<change>`` event per item.

- ``name``: ``"hubspot/" + subscriptionType`` in snake case (``contact.creation`` ->
  ``hubspot/contact.creation``, ``contact.propertyChange`` -> ``hubspot/contact.property_change``).
- ``id``: ``"hubspot-" + eventId`` (the same on HubSpot's retries).
- ``ts``: ``occurredAt`` (ms).
- ``data``: the item.
"""

from __future__ import annotations

import re
from typing import Any

from gateway import Event, Webhook, transform
from transforms.hmac import per_item

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def snake(text: str) -> str:
    """``propertyChange`` -> ``property_change``; dots kept."""
    return _CAMEL.sub("_", text).lower().replace("-", "_")


def _name(item: dict[str, Any]) -> str:
    kind = item.get("subscriptionType")
    if not isinstance(kind, str) or "." not in kind:
        raise ValueError("each HubSpot item has a subscriptionType like contact.creation")
    return "hubspot/" + snake(kind)


@transform("hubspot")
def hubspot(webhook: Webhook) -> list[Event]:
    """One HubSpot batch -> one event per item."""
    return per_item(webhook, "hubspot", _name, "eventId", "occurredAt")
