"""SendGrid Event Webhook batches become one ``sendgrid/email.<event>`` event per item.

- ``name``: ``"sendgrid/email." + event`` (``processed``, ``delivered``, ``open``, ``click``,
  ``bounce``, ``dropped``, ``deferred``, ``spamreport``, ``unsubscribe``, ``group_unsubscribe``,
  ``group_resubscribe``).
- ``id``: ``"sendgrid-" + sg_event_id`` (unique per event; SendGrid retries keep it).
- ``ts``: ``timestamp`` (Unix seconds) in ms.
- ``data``: the item.
"""

from __future__ import annotations

from typing import Any

from gateway import Event, Webhook, transform
from transforms._naming import snake
from transforms._typed import per_item


def _name(item: dict[str, Any]) -> str:
    kind = item.get("event")
    if not isinstance(kind, str) or not kind:
        raise ValueError("each SendGrid item has an event")
    return "sendgrid/email." + snake(kind)


@transform("sendgrid")
def sendgrid(webhook: Webhook) -> list[Event]:
    """One SendGrid batch -> one event per item."""
    return per_item(webhook, "sendgrid", _name, "sg_event_id", "timestamp")
