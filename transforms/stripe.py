"""Stripe events become ``stripe/<type>`` events with id ``stripe-<evt id>``.

Snapshot events keep the whole Stripe event as ``data`` (object, previous_attributes, livemode,
account for Connect). Thin (v2) events map the same way from their own fields; their ``created``
is an ISO-8601 string.
"""

from __future__ import annotations

from datetime import datetime

from gateway import Event, Webhook, transform


def _iso_to_ms(value: str) -> int:
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


@transform("stripe")
def stripe(webhook: Webhook) -> Event:
    """One Stripe event -> one Inngest event."""
    event = webhook.json
    created = event.get("created")
    if isinstance(created, int):
        ts = created * 1000
    elif isinstance(created, str):
        ts = _iso_to_ms(created)
    else:
        ts = webhook.received_at_ms
    version = event.get("api_version")
    return Event(
        name=f"stripe/{event['type']}",
        id=f"stripe-{event['id']}",
        ts=ts,
        v=version if isinstance(version, str) else None,
        data=event,
    )
