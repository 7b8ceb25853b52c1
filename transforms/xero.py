"""Xero webhooks become one ``xero/<category>.<type>`` event per ``events[]`` item.

- ``name``: ``eventCategory`` and ``eventType`` in lower case, the type as a past participle:
  ``INVOICE``/``UPDATE`` -> ``xero/invoice.updated``, ``CONTACT``/``CREATE`` ->
  ``xero/contact.created``, ``CREDITNOTE`` -> ``credit_note``.
- ``id``: ``"xero-" + resourceId-eventType-eventDateUtc`` (Xero sends no event id).
- ``ts``: ``eventDateUtc`` (ISO-8601 in UTC without an offset), else the receive time.
- ``data``: the item, with ``firstEventSequence``/``lastEventSequence`` of its batch.

An empty ``events`` list is Xero's Intent to Receive check: the provider answers it.
"""

from __future__ import annotations

import re
from typing import Any

from gateway import Event, Webhook, transform
from gateway.providers.xero import event_key
from transforms._time import utc_ms

CATEGORIES = {"CREDITNOTE": "credit_note"}
TYPES = {"CREATE": "created", "UPDATE": "updated", "DELETE": "deleted"}
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


def _name(item: dict[str, Any]) -> str:
    category, kind = item.get("eventCategory"), item.get("eventType")
    if not (isinstance(category, str) and _WORD.fullmatch(category)):
        raise ValueError("each Xero event has an eventCategory like INVOICE")
    if not (isinstance(kind, str) and _WORD.fullmatch(kind)):
        raise ValueError("each Xero event has an eventType like UPDATE")
    noun = CATEGORIES.get(category.upper(), category.lower())
    return f"xero/{noun}.{TYPES.get(kind.upper(), kind.lower())}"


@transform("xero")
def xero(webhook: Webhook) -> list[Event]:
    """One Xero batch -> one event per item."""
    payload = webhook.json
    items = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ValueError("a Xero webhook has an events list of objects")
    batch = {k: payload.get(k) for k in ("firstEventSequence", "lastEventSequence")}
    events = []
    for item in items:
        key = event_key(item)
        events.append(
            Event(
                name=_name(item),
                id=f"xero-{key}" if key else None,
                ts=utc_ms(item.get("eventDateUtc")) or webhook.received_at_ms or None,
                data={**item, **batch},
            )
        )
    return events
