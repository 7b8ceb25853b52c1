"""Square events become ``square/<type>`` events (Square's types are already ``noun.verb``).

- ``name``: ``"square/" + type`` (``square/payment.created``, ``square/order.fulfillment.updated``).
- ``id``: ``"square-" + event_id`` (the same on Square's retries).
- ``ts``: ``created_at`` (RFC 3339) in ms.
- ``data``: the whole body (``merchant_id``, ``type``, ``event_id``, ``created_at``, ``data``).
"""

from __future__ import annotations

from gateway import Event, Webhook, transform
from transforms.hmac import hmac_event

OPTIONS = {"name_template": "{prefix}/{type:lower}", "id_path": "event_id", "ts_path": "created_at"}


@transform("square")
def square(webhook: Webhook) -> Event:
    """One Square event -> one event."""
    return hmac_event(webhook, OPTIONS)
