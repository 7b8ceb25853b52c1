"""Telegram updates become ``telegram/<noun>.<verb>`` events from the update's one field.

- ``name``: ``message`` -> ``telegram/message.received``, ``edited_message`` ->
  ``message.edited``, ``channel_post`` -> ``channel_post.received``, ``callback_query`` ->
  ``callback_query.received``, ... (:data:`NAMES`); a field not listed -> ``<field>.received``.
- ``id``: ``"telegram-" + update_id``.
- ``ts``: the object's ``edit_date`` or ``date`` (Unix seconds; boosts: ``add_date`` /
  ``remove_date``), else the receive time (inline and callback queries carry no time).
- ``data``: the whole update.
"""

from __future__ import annotations

import re
from typing import Any

from gateway import Event, Webhook, transform
from transforms._time import to_ms

#: update field -> event name (Bot API "Update" object)
NAMES = {
    "message": "message.received",
    "edited_message": "message.edited",
    "channel_post": "channel_post.received",
    "edited_channel_post": "channel_post.edited",
    "business_connection": "business_connection.updated",
    "business_message": "business_message.received",
    "edited_business_message": "business_message.edited",
    "deleted_business_messages": "business_messages.deleted",
    "message_reaction": "message_reaction.updated",
    "message_reaction_count": "message_reaction_count.updated",
    "poll": "poll.updated",
    "poll_answer": "poll_answer.changed",
    "my_chat_member": "my_chat_member.updated",
    "chat_member": "chat_member.updated",
    "chat_boost": "chat_boost.updated",
    "removed_chat_boost": "chat_boost.removed",
    "purchased_paid_media": "paid_media.purchased",
}
_FIELD = re.compile(r"[a-z][a-z0-9_]{0,63}")
TIME_FIELDS = ("edit_date", "date", "add_date", "remove_date")


def _time(item: Any) -> int | None:
    if not isinstance(item, dict):
        return None
    if isinstance(item.get("boost"), dict):  # chat_boost: the ChatBoost holds the time
        item = item["boost"]
    for field in TIME_FIELDS:
        if item.get(field):
            return to_ms(item[field])
    return None


@transform("telegram")
def telegram(webhook: Webhook) -> Event:
    """One Telegram update -> one event."""
    update = webhook.json
    ident = update.get("update_id") if isinstance(update, dict) else None
    if not isinstance(ident, int) or isinstance(ident, bool):
        raise ValueError("a Telegram update has an integer update_id")
    fields = [key for key in update if key != "update_id"]
    if len(fields) != 1:
        raise ValueError("a Telegram update has exactly one field besides update_id")
    field = fields[0]
    if not _FIELD.fullmatch(field):
        raise ValueError(f"a Telegram update field is lower snake case, not {field[:40]!r}")
    return Event(
        name="telegram/" + NAMES.get(field, f"{field}.received"),
        id=f"telegram-{ident}",
        ts=_time(update[field]) or webhook.received_at_ms or None,
        data=update,
    )
