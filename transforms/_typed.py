"""Events from bodies that name their type, id and time in fields: one event per object (Mux,
Vercel, Typeform and the like) or per item of an array (HubSpot, SendGrid), named
``<provider>/...``, id ``<provider>-<id>``, ts in ms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway import Event, Webhook
from gateway.providers.generic_hmac import lookup
from transforms._time import to_ms


def _get(payload: object, path: str) -> object:
    try:
        return lookup(payload, path)
    except KeyError:
        return None


def typed_event(
    webhook: Webhook,
    provider: str,
    *,
    name_of: Callable[[str], str],
    ts_paths: tuple[str, ...],
    type_key: str = "type",
    id_key: str = "id",
) -> Event:
    """The event of a JSON object body; ``ValueError`` (quarantine) without a type string.

    ``ts`` is the first of ``ts_paths`` that holds a usable time, else the receive time.
    """
    payload = webhook.json
    kind = payload.get(type_key) if isinstance(payload, dict) else None
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"a {provider} webhook is a JSON object with a {type_key} string")
    ident = payload.get(id_key)
    ts = next(filter(None, (to_ms(_get(payload, path)) for path in ts_paths)), None)
    return Event(
        name=f"{provider}/{name_of(kind)}",
        id=f"{provider}-{ident}" if isinstance(ident, str) and ident else None,
        ts=ts or webhook.received_at_ms or None,
        data=payload,
    )


def per_item(
    webhook: Webhook,
    provider: str,
    name_of: Callable[[dict[str, Any]], str],
    id_key: str,
    ts_key: str,
) -> list[Event]:
    """One event per item: ``name_of(item)``, id ``<provider>-<item[id_key]>``, ts from ts_key."""
    items = webhook.json
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ValueError(f"a {provider} body is a JSON array of objects")
    return [
        Event(
            name=name_of(item),
            id=f"{provider}-{item[id_key]}" if item.get(id_key) not in (None, "") else None,
            ts=to_ms(item.get(ts_key)) or webhook.received_at_ms or None,
            data=item,
        )
        for item in items
    ]
