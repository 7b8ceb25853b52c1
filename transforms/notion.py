"""Notion events become ``notion/<type>`` events (Notion's types are already ``noun.verb``).

- ``name``: ``"notion/" + type`` in snake case (``page.created``, ``page.content_updated``,
  ``data_source.schema_updated``, ``comment.created``).
- ``id``: ``"notion-" + id`` (the event id, kept on Notion's retries; ``attempt_number`` grows).
- ``ts``: ``timestamp`` (ISO-8601), else the receive time.
- ``data``: the event (``entity``, ``data``, ``authors``, ``workspace_id``, ...).

The unsigned ``verification_token`` request is answered by the provider and never reaches the
transform.
"""

from __future__ import annotations

from gateway import Event, Webhook, transform
from transforms._naming import dotted
from transforms._time import to_ms


@transform("notion")
def notion(webhook: Webhook) -> Event:
    """One Notion event -> one event."""
    payload = webhook.json
    name = dotted(payload.get("type")) if isinstance(payload, dict) else None
    if name is None:
        raise ValueError("a Notion event has a type like page.created")
    ident = payload.get("id")
    return Event(
        name="notion/" + name,
        id=f"notion-{ident}" if isinstance(ident, str) and ident else None,
        ts=to_ms(payload.get("timestamp")) or webhook.received_at_ms or None,
        data=payload,
    )
