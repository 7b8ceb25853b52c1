"""Zendesk webhooks become ``zendesk/<noun>.<verb>`` events.

- ``name``: an event webhook's ``type`` without ``zen:event-type:``
  (``zen:event-type:ticket.created`` -> ``zendesk/ticket.created``,
  ``zendesk/user.active_changed``); a trigger or automation webhook (its body is whatever the
  admin wrote, with no ``type``) is ``zendesk/webhook.invoked``.
- ``id``: ``"zendesk-" +`` the event ``id``, else ``X-Zendesk-Webhook-Id`` + ``-`` +
  ``X-Zendesk-Webhook-Invocation-Id``.
- ``ts``: the event's ``time``, else the signed ``X-Zendesk-Webhook-Signature-Timestamp``, else
  the receive time.
- ``data``: the payload.
"""

from __future__ import annotations

from gateway import Event, Webhook, transform
from gateway.providers.zendesk import EVENT_TYPE_PREFIX, zendesk_id
from transforms._naming import dotted
from transforms._time import to_ms


@transform("zendesk")
def zendesk(webhook: Webhook) -> Event:
    """One Zendesk webhook -> one event."""
    payload = webhook.json
    if not isinstance(payload, dict):
        raise ValueError("a Zendesk payload is a JSON object")
    kind = payload.get("type")
    if isinstance(kind, str) and kind.startswith(EVENT_TYPE_PREFIX):
        noun_verb = dotted(kind.removeprefix(EVENT_TYPE_PREFIX))
        if noun_verb is None:
            raise ValueError(f"Zendesk event type {kind!r} is not noun.verb")
        name = "zendesk/" + noun_verb
    else:
        name = "zendesk/webhook.invoked"
    key = zendesk_id(webhook)
    ts = to_ms(payload.get("time")) or to_ms(
        webhook.header("x-zendesk-webhook-signature-timestamp")
    )
    return Event(
        name=name,
        id=f"zendesk-{key}" if key else None,
        ts=ts or webhook.received_at_ms or None,
        data=payload,
    )
