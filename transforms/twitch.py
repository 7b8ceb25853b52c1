"""Twitch EventSub messages become ``twitch/<subscription.type>`` events.

- ``name``: ``"twitch/" + subscription.type`` (already ``noun.verb``: ``twitch/channel.follow``,
  ``twitch/stream.online``); a ``revocation`` message is ``twitch/subscription.revoked``.
- ``id``: ``"twitch-" + Twitch-Eventsub-Message-Id`` (kept when Twitch resends a message); for a
  batched notification (``drop.entitlement.grant``'s ``events`` list) one event per item, id
  ``twitch-<item id>``.
- ``ts``: ``Twitch-Eventsub-Message-Timestamp`` (ms), else the receive time.
- ``data``: the body (``subscription`` and ``event``); for a batch, ``subscription`` and the item.

``webhook_callback_verification`` is answered by the provider and never reaches the transform.
"""

from __future__ import annotations

from gateway import Event, Webhook, transform
from gateway.providers.twitch import ID_HEADER, REVOCATION, TIMESTAMP_HEADER, TYPE_HEADER
from transforms._time import to_ms


@transform("twitch")
def twitch(webhook: Webhook) -> Event | list[Event]:
    """One EventSub notification or revocation -> one event (one per item for batches)."""
    payload = webhook.json
    subscription = payload.get("subscription") if isinstance(payload, dict) else None
    kind = subscription.get("type") if isinstance(subscription, dict) else None
    if not isinstance(kind, str) or not kind:
        raise ValueError("an EventSub message has subscription.type")
    ts = to_ms(webhook.header(TIMESTAMP_HEADER)) or webhook.received_at_ms or None
    message_id = webhook.header(ID_HEADER)
    if webhook.header(TYPE_HEADER) == REVOCATION:
        name = "twitch/subscription.revoked"
    else:
        name = "twitch/" + kind.lower()
    items = payload.get("events")
    if isinstance(items, list) and "event" not in payload:
        return [
            Event(
                name=name,
                id=f"twitch-{item['id']}" if isinstance(item, dict) and item.get("id") else None,
                ts=ts,
                data={"subscription": subscription, "event": item},
            )
            for item in items
        ]
    return Event(name=name, id=f"twitch-{message_id}" if message_id else None, ts=ts, data=payload)
