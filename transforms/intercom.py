"""Intercom notifications become ``intercom/<topic>`` events with id ``intercom-<id>``.

``ping`` never becomes an event; a notification without an id gets no dedup id (never
``intercom-None``).
"""

from __future__ import annotations

from gateway import Event, Webhook, transform


@transform("intercom")
def intercom(webhook: Webhook) -> Event | None:
    """One Intercom notification -> one event; ``ping`` -> None."""
    note = webhook.json
    topic = note.get("topic")
    if topic == "ping":
        return None
    created = note.get("created_at")
    notification_id = note.get("id")
    return Event(
        name=f"intercom/{topic}",
        id=f"intercom-{notification_id}" if notification_id else None,
        ts=created * 1000 if isinstance(created, int) else webhook.received_at_ms,
        data=note,
    )
