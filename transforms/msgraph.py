"""Microsoft Graph notification collections become one event per ``value[]`` item.

- ``name``: change notifications ``msgraph/<kind>.<changeType>``, the kind from
  ``resourceData["@odata.type"]`` in snake case (``#Microsoft.Graph.Message`` ->
  ``msgraph/message.created``, ``#microsoft.graph.chatMessage`` ->
  ``msgraph/chat_message.updated``), else the resource path's last named segment
  (``drives/b!x/root`` -> ``msgraph/root.updated``, ``/me/events/AAk=`` ->
  ``msgraph/events.deleted``); lifecycle notifications
  ``msgraph/subscription.<lifecycleEvent>`` (``reauthorizationRequired`` ->
  ``subscription.reauthorization_required``, ``subscriptionRemoved`` -> ``subscription.removed``,
  ``missed`` -> ``subscription.missed``).
- ``id``: ``"msgraph-" + id`` when Graph sends an ``id``, else, for an item naming one change
  (``created``/``deleted`` or an ``@odata.etag``), ``"msgraph-" + subscriptionId + "-" +
  changeType + "-" +`` the item's SHA-256 (32 hex digits); none for OneDrive's ``updated`` and
  lifecycle items, which repeat unchanged for every later change or reminder.
- ``ts``: Graph sends no event time: the receive time.
- ``data``: the item, with the collection's ``validationTokens`` left out.
"""

from __future__ import annotations

import re
from typing import Any

from gateway import Event, Webhook, transform
from gateway.providers.msgraph import item_key, notifications
from transforms._naming import camel_snake

_NAMED = re.compile(r"[A-Za-z][A-Za-z0-9]*")


def kind_of(item: dict[str, Any]) -> str:
    """The resource kind of a change notification, snake case (see the module docstring)."""
    data = item.get("resourceData")
    odata = data.get("@odata.type") if isinstance(data, dict) else None
    if isinstance(odata, str) and odata.rsplit(".", 1)[-1].isalnum():
        return camel_snake(odata.rsplit(".", 1)[-1])
    resource = item.get("resource")
    path = resource.split("?", 1)[0] if isinstance(resource, str) else ""
    for segment in reversed(path.split("/")):
        named = segment.split("(", 1)[0]
        # collections are lower camel case (messages, chatMessages, root); ids are not
        if _NAMED.fullmatch(named) and named[0].islower() and named not in ("me", "users"):
            return camel_snake(named)
    return "resource"


def name_of(item: dict[str, Any]) -> str:
    """``msgraph/<kind>.<changeType>`` or ``msgraph/subscription.<lifecycleEvent>``."""
    lifecycle = item.get("lifecycleEvent")
    if isinstance(lifecycle, str) and lifecycle:
        verb = lifecycle.removeprefix("subscription") or lifecycle
        return f"msgraph/subscription.{camel_snake(verb[0].lower() + verb[1:])}"
    change = item.get("changeType")
    if not isinstance(change, str) or not _NAMED.fullmatch(change):
        raise ValueError("a Microsoft Graph notification has a changeType or a lifecycleEvent")
    return f"msgraph/{kind_of(item)}.{camel_snake(change)}"


@transform("msgraph")
def msgraph(webhook: Webhook) -> list[Event]:
    """One notification collection -> one event per item."""
    events = []
    for item in notifications(webhook.json):
        key = item_key(item)
        events.append(
            Event(
                name=name_of(item),
                id=f"msgraph-{key}" if key else None,
                ts=webhook.received_at_ms or None,
                data=item,
            )
        )
    return events
