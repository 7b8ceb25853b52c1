"""Paddle Billing events become ``paddle/<event_type>`` events (already ``noun.verb``).

- ``name``: ``"paddle/" + event_type`` (``paddle/transaction.completed``,
  ``paddle/subscription.past_due``).
- ``id``: ``"paddle-" + event_id`` (the same on Paddle's retries).
- ``ts``: ``occurred_at`` (ISO-8601) in ms.
- ``data``: the whole body (``event_id``, ``event_type``, ``occurred_at``, ``notification_id``,
  ``data``).
"""

from __future__ import annotations

from gateway import Event, Webhook, transform
from transforms.hmac import hmac_event

OPTIONS = {
    "name_template": "{prefix}/{event_type:lower}",
    "id_path": "event_id",
    "ts_path": "occurred_at",
}


@transform("paddle")
def paddle(webhook: Webhook) -> Event:
    """One Paddle notification -> one event."""
    return hmac_event(webhook, OPTIONS)
