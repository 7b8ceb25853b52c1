"""Linear webhooks become ``linear/<type>.<action>`` events.

- ``name``: ``"linear/" + type + "." + action`` in snake case (``Issue``/``create`` ->
  ``linear/issue.create``, ``IssueLabel``/``update`` -> ``linear/issue_label.update``,
  ``AppUserNotification``/``issueMention`` -> ``linear/app_user_notification.issue_mention``).
- ``id``: ``"linear-" + Linear-Delivery`` (the delivery UUID: the only id tying retries together).
- ``ts``: ``createdAt`` (when the change happened), else ``webhookTimestamp`` (ms).
- ``data``: the body.
"""

from __future__ import annotations

from gateway import Event, Webhook, transform
from transforms._naming import camel_snake
from transforms._time import to_ms


@transform("linear")
def linear(webhook: Webhook) -> Event:
    """One Linear webhook -> one event."""
    payload = webhook.json
    kind = payload.get("type") if isinstance(payload, dict) else None
    action = payload.get("action") if isinstance(payload, dict) else None
    if not (isinstance(kind, str) and kind and isinstance(action, str) and action):
        raise ValueError("a Linear webhook has a type (Issue) and an action (create)")
    delivery = webhook.header("linear-delivery")
    return Event(
        name=f"linear/{camel_snake(kind)}.{camel_snake(action)}",
        id=f"linear-{delivery}" if delivery else None,
        ts=to_ms(payload.get("createdAt"))
        or to_ms(payload.get("webhookTimestamp"))
        or webhook.received_at_ms
        or None,
        data=payload,
    )
