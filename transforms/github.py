"""GitHub deliveries become ``github/<event>.<action>`` events.

- ``name``: ``"github/" + X-GitHub-Event``, plus ``"." + action`` when the payload has one
  (``github/pull_request.opened``; ``github/push`` has no action).
- ``id``: ``"github-" + X-GitHub-Delivery`` (a manual redelivery keeps the GUID).
- ``ts``: the receive time: GitHub payloads share no event-time field.
- ``data``: the payload, from a JSON body or from the ``payload`` field of a form body.

``ping`` never becomes an event.
"""

from __future__ import annotations

from typing import Any

from gateway import Event, Webhook, transform
from gateway.webhook import loads_exact


def _payload(webhook: Webhook) -> dict[str, Any]:
    if webhook.body.lstrip()[:1] == b"{":
        payload = webhook.json
    else:
        payload = loads_exact(webhook.form["payload"])
    if not isinstance(payload, dict):
        raise ValueError("a GitHub payload is a JSON object")
    return payload


@transform("github")
def github(webhook: Webhook) -> Event | None:
    """One GitHub delivery -> one event; ``ping`` -> None."""
    event = webhook.header("x-github-event")
    if not event:
        raise ValueError("a GitHub delivery has an X-GitHub-Event header")
    if event == "ping":
        return None
    payload = _payload(webhook)
    action = payload.get("action")
    name = f"github/{event}.{action}" if isinstance(action, str) and action else f"github/{event}"
    delivery = webhook.header("x-github-delivery")
    return Event(
        name=name,
        id=f"github-{delivery}" if delivery else None,
        ts=webhook.received_at_ms or None,
        data=payload,
    )
