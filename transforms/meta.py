"""Meta notifications become one event per change: ``meta/<field>.changed``.

A notification is ``{"object": ..., "entry": [{"id", "time", "changes": [{"field", "value"}]}]}``
(WhatsApp, Instagram, Pages) or, for Messenger, entries with a ``messaging`` list.

- ``name``: ``meta/<field>.changed`` for each change (``meta/messages.changed`` for WhatsApp
  messages and statuses); ``meta/messaging.received`` for each Messenger ``messaging`` item.
- ``id``: Meta sends no event id: ``meta-`` + the SHA-256 of the body (first 32 hex digits) +
  ``-<n>``, the event's position, so a resent notification gets the same ids.
- ``ts``: the entry's ``time`` (Unix seconds or ms), else the receive time.
- ``data``: ``{"object", "entry_id", "field", "value"}`` (or ``"messaging"`` for Messenger).
"""

from __future__ import annotations

import hashlib
from typing import Any

from gateway import Event, Webhook, transform
from transforms._time import to_ms


@transform("meta")
def meta(webhook: Webhook) -> list[Event]:
    """One Meta notification -> one event per change or Messenger item."""
    payload = webhook.json
    if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
        raise ValueError("a Meta notification is an object with an entry list")
    digest = hashlib.sha256(webhook.body).hexdigest()[:32]
    found: list[tuple[str, int | None, dict[str, Any]]] = []
    for entry in payload["entry"]:
        if not isinstance(entry, dict):
            raise ValueError("each Meta entry is an object")
        common = {"object": payload.get("object"), "entry_id": entry.get("id")}
        ts = to_ms(entry.get("time"))
        for change in entry.get("changes") or []:
            field = change.get("field") if isinstance(change, dict) else None
            if not isinstance(field, str) or not field:
                raise ValueError("a Meta change has a field")
            found.append((f"meta/{field}.changed", ts, {**common, **change}))
        for item in entry.get("messaging") or []:
            found.append(("meta/messaging.received", ts, {**common, "messaging": item}))
    return [
        Event(
            name=name,
            id=f"meta-{digest}-{n}",
            ts=ts or webhook.received_at_ms or None,
            data=data,
        )
        for n, (name, ts, data) in enumerate(found)
    ]
