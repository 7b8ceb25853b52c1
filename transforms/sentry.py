"""Sentry integration webhooks become ``sentry/<resource>.<action>`` events.

- ``name``: ``"sentry/" + Sentry-Hook-Resource + "." + action`` (``sentry/issue.created``,
  ``sentry/event_alert.triggered``, ``sentry/metric_alert.critical``); ``sentry/<resource>`` when
  the body has no ``action``.
- ``id``: ``"sentry-" + Request-ID``.
- ``ts``: ``Sentry-Hook-Timestamp`` (Unix seconds, when Sentry sent it), else the receive time.
- ``data``: the payload (``action``, ``installation``, ``data``, ``actor``).
"""

from __future__ import annotations

from gateway import Event, Webhook, transform
from transforms._naming import snake
from transforms._time import to_ms


@transform("sentry")
def sentry(webhook: Webhook) -> Event:
    """One Sentry webhook -> one event."""
    payload = webhook.json
    if not isinstance(payload, dict):
        raise ValueError("a Sentry payload is a JSON object")
    resource = snake(webhook.header("sentry-hook-resource") or "")
    if not resource:
        raise ValueError("a Sentry webhook has a Sentry-Hook-Resource header")
    action = payload.get("action")
    name = f"sentry/{resource}"
    if isinstance(action, str) and snake(action):
        name += "." + snake(action)
    request_id = webhook.header("request-id")
    return Event(
        name=name,
        id=f"sentry-{request_id}" if request_id else None,
        ts=to_ms(webhook.header("sentry-hook-timestamp")) or webhook.received_at_ms or None,
        data=payload,
    )
