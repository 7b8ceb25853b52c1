"""Calendly events become ``calendly/<event>`` events (Calendly's names are already ``noun.verb``).

- ``name``: ``"calendly/" + event`` (``calendly/invitee.created``, ``calendly/invitee.canceled``,
  ``calendly/invitee_no_show.created``, ``calendly/routing_form_submission.created``).
- ``id``: ``"calendly-" + event + "-" + payload.uri``: Calendly sends no event id; the resource
  URI with the event names it, and retries keep both.
- ``ts``: ``created_at`` (ISO-8601) in ms.
- ``data``: the whole body (``event``, ``created_at``, ``created_by``, ``payload``).
"""

from __future__ import annotations

from gateway import Event, Webhook, transform
from gateway.providers.calendly import event_key
from transforms._time import to_ms
from transforms.hmac import render_name


@transform("calendly")
def calendly(webhook: Webhook) -> Event:
    """One Calendly event -> one event."""
    payload = webhook.json
    if not isinstance(payload, dict):
        raise ValueError("a Calendly body is a JSON object")
    key = event_key(payload)
    return Event(
        name=render_name("{prefix}/{event:lower}", webhook, payload),
        id=f"{webhook.prefix or webhook.source}-{key}" if key else None,
        ts=to_ms(payload.get("created_at")) or webhook.received_at_ms or None,
        data=payload,
    )
