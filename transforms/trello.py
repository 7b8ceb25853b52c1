"""Trello actions become ``trello/<noun>.<verb>`` events.

Trello names an action verb first in camel case (``action.type``): the first word is the
verb, the rest the noun, in snake case.

======================================  =========================================
``action.type``                         event name
======================================  =========================================
``createCard``                          ``trello/card.create``
``updateCard``                          ``trello/card.update``
``commentCard``                         ``trello/card.comment``
``addMemberToCard``                     ``trello/member_to_card.add``
``updateCheckItemStateOnCard``          ``trello/check_item_state_on_card.update``
``deleteList``                          ``trello/list.delete``
======================================  =========================================

A one-word type names no noun: ``trello/action.<type>``. What changed in an ``updateCard``
(moved, renamed, archived) is in ``data.action.display.translationKey`` and ``action.data.old``.

- ``id``: ``"trello-" + action.id`` (the action's id, the same on Trello's retries).
- ``ts``: ``action.date`` (ISO-8601), else the receive time.
- ``data``: the body (``action``, ``model``, ``webhook``).
"""

from __future__ import annotations

import re

from gateway import Event, Webhook, transform
from transforms._naming import camel_snake
from transforms._time import to_ms

_TYPE = re.compile(r"([a-z]+)([A-Z][A-Za-z0-9]*)?")


def name_of(action_type: str) -> str:
    """``updateCard`` -> ``trello/card.update`` (see the module docstring)."""
    match = _TYPE.fullmatch(action_type)
    if match is None:
        raise ValueError(
            f"a Trello action type is camel case like updateCard: {action_type[:40]!r}"
        )
    verb, noun = match.groups()
    return f"trello/{camel_snake(noun) if noun else 'action'}.{verb}"


@transform("trello")
def trello(webhook: Webhook) -> Event:
    """One Trello webhook -> one event."""
    payload = webhook.json
    action = payload.get("action") if isinstance(payload, dict) else None
    kind = action.get("type") if isinstance(action, dict) else None
    if not isinstance(action, dict) or not isinstance(kind, str):
        raise ValueError("a Trello webhook has an action with a type")
    ident = action.get("id")
    return Event(
        name=name_of(kind),
        id=f"trello-{ident}" if isinstance(ident, str) and ident else None,
        ts=to_ms(action.get("date")) or webhook.received_at_ms or None,
        data=payload,
    )
