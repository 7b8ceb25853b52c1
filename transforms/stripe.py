"""Stripe events become ``stripe/<type>`` events with id ``stripe-<evt id>``.

Snapshot events (``"object": "event"``) keep the whole Stripe event as ``data`` (``data.object``,
``data.previous_attributes``, ``livemode``, ``account`` for Connect, ``request``); ``ts`` is
``created`` in ms and ``v`` the ``api_version``. Thin events (``"object": "v2.core.event"``)
map the same way from their own fields; their ``created`` is an ISO-8601 string and they carry
no API version.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from gateway import Event, Webhook, transform

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _iso_to_ms(value: str) -> int:
    when = datetime.fromisoformat(value)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - _EPOCH) // timedelta(milliseconds=1)


def _ts(created: Any, fallback: int) -> int | None:
    if isinstance(created, int) and not isinstance(created, bool):
        return created * 1000
    if isinstance(created, str):
        return _iso_to_ms(created)
    return fallback or None


@transform("stripe")
def stripe(webhook: Webhook) -> Event:
    """One Stripe event (snapshot or thin) -> one Inngest event."""
    event = webhook.json
    if not isinstance(event, dict) or not event.get("type") or not event.get("id"):
        raise ValueError("a Stripe event is a JSON object with 'id' and 'type'")
    version = event.get("api_version")
    return Event(
        name=f"stripe/{event['type']}",
        id=f"stripe-{event['id']}",
        ts=_ts(event.get("created"), webhook.received_at_ms),
        v=version if isinstance(version, str) and version else None,
        data=event,
    )
