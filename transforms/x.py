"""X webhooks become ``x/<noun>.<verb>`` events: one per Account Activity item, or one per X
Activity API delivery.

Account Activity API bodies (``{"for_user_id": ..., "<kind>_events": [...]}``): one event per
item of each ``*_events`` array.

- ``name``: from the array's key: ``tweet_create_events`` -> ``x/tweet.create``,
  ``tweet_delete_events`` -> ``x/tweet.delete``, ``favorite_events`` -> ``x/favorite.create``,
  ``direct_message_events`` -> ``x/direct_message.create``,
  ``direct_message_indicate_typing_events`` -> ``x/direct_message.indicate_typing``,
  ``direct_message_mark_read_events`` -> ``x/direct_message.mark_read``; the ones whose items
  carry a ``type`` name it: ``follow_events`` -> ``x/follow.follow`` / ``x/follow.unfollow``
  (likewise ``block``, ``mute``); any other ``<kind>_events`` -> ``x/<kind>.received``.
  ``user_event`` (an app's access revoked) -> ``x/user_event.revoke``.
- ``id``: ``x-<for_user_id>-<kind>-<item id_str or id>`` (the same tweet delivered for two
  subscribed users makes two events); items without an id get ``x-<body digest>-<n>``.
- ``ts``: the item's ``timestamp_ms`` or ``created_timestamp`` (ms), else the receive time.
- ``data``: ``{"for_user_id", "kind", "item"}``.

X Activity API bodies (``{"data": {"event_uuid", "event_type", "payload", ...}}``): ``name``
``x/<event_type>`` (``x/post.create``, ``x/profile.update.bio``), ``id`` ``x-<event_uuid>``,
``ts`` the payload's ``created_at`` if any, ``data`` the envelope's ``data``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from gateway import Event, Webhook, transform
from transforms._naming import snake
from transforms._time import to_ms

NAMES = {
    "tweet_create": "tweet.create",
    "tweet_delete": "tweet.delete",
    "favorite": "favorite.create",
    "direct_message": "direct_message.create",
    "direct_message_indicate_typing": "direct_message.indicate_typing",
    "direct_message_mark_read": "direct_message.mark_read",
}
TYPED = ("follow", "block", "mute")  # items say follow/unfollow, block/unblock, mute/unmute


def _name(kind: str, item: dict[str, Any]) -> str:
    if kind in NAMES:
        return "x/" + NAMES[kind]
    verb = item.get("type")
    if kind in TYPED and isinstance(verb, str) and verb:
        return f"x/{kind}.{snake(verb)}"
    return f"x/{kind}.received"


def _activity(webhook: Webhook, data: dict[str, Any]) -> Event:
    kind = data.get("event_type")
    if not isinstance(kind, str) or not kind:
        raise ValueError("an X Activity API delivery has data.event_type")
    inner = data.get("payload")
    created = inner.get("created_at") if isinstance(inner, dict) else None
    uuid = data.get("event_uuid")
    return Event(
        name="x/" + kind.lower(),
        id=f"x-{uuid}" if isinstance(uuid, str | int) and uuid != "" else None,
        ts=to_ms(created) or webhook.received_at_ms or None,
        data=data,
    )


@transform("x")
def x(webhook: Webhook) -> list[Event]:
    """One X delivery -> one event per Account Activity item (or the X Activity API event)."""
    payload = webhook.json
    if not isinstance(payload, dict):
        raise ValueError("an X delivery is a JSON object")
    if isinstance(payload.get("data"), dict) and "event_type" in payload["data"]:
        return [_activity(webhook, payload["data"])]
    user = payload.get("for_user_id")
    digest = hashlib.sha256(webhook.body).hexdigest()[:32]
    found: list[tuple[str, str, dict[str, Any]]] = []
    for key, items in payload.items():
        if key.endswith("_events") and isinstance(items, list):
            kind = key.removesuffix("_events")
            found.extend((_name(kind, i), kind, i) for i in items if isinstance(i, dict))
    if isinstance(payload.get("user_event"), dict):
        found.extend(("x/user_event." + verb, "user_event", {verb: body})
                     for verb, body in payload["user_event"].items())  # fmt: skip
    if not found:
        raise ValueError("an X delivery has *_events arrays (or an X Activity API data object)")
    events = []
    for n, (name, kind, item) in enumerate(found):
        ident = item.get("id_str") or item.get("id")
        key = f"{user}-{kind}-{ident}" if user and isinstance(ident, str | int) else f"{digest}-{n}"
        ts = to_ms(item.get("timestamp_ms") or item.get("created_timestamp"))
        events.append(
            Event(
                name=name,
                id=f"x-{key}",
                ts=ts or webhook.received_at_ms or None,
                data={"for_user_id": user, "kind": kind, "item": item},
            )
        )
    return events
