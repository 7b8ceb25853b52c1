"""Intercom notifications become ``intercom/<topic>`` events with id ``intercom-<id>``.

``ts`` is ``created_at`` in ms and ``data`` the whole notification. ``ping`` never becomes an
event; a notification whose id is null gets no dedup id (never ``intercom-None``).
"""

from __future__ import annotations

from gateway import Event, Webhook, transform


@transform("intercom")
def intercom(webhook: Webhook) -> Event | None:
    """One Intercom notification -> one event; ``ping`` -> None."""
    note = webhook.json
    if not isinstance(note, dict) or not isinstance(note.get("topic"), str) or not note["topic"]:
        raise ValueError("an Intercom notification is a JSON object with a 'topic'")
    topic = note["topic"]
    if topic == "ping":
        return None
    created = note.get("created_at")
    notification_id = note.get("id")
    return Event(
        name=f"intercom/{topic}",
        id=f"intercom-{notification_id}" if notification_id else None,
        ts=created * 1000
        if type(created) is int and created > 0
        else webhook.received_at_ms or None,
        data=note,
    )
