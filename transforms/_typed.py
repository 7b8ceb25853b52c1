"""One event from a webhook whose body names its type, id and time in fields (Mux, Vercel,
Typeform and the like): ``<provider>/<name_of(type)>``, id ``<provider>-<id>``, ts in ms."""

from __future__ import annotations

from collections.abc import Callable

from gateway import Event, Webhook
from gateway.providers.generic_hmac import lookup
from transforms.hmac import _ms


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
    ts = next(filter(None, (_ms(_get(payload, path)) for path in ts_paths)), None)
    return Event(
        name=f"{provider}/{name_of(kind)}",
        id=f"{provider}-{ident}" if isinstance(ident, str) and ident else None,
        ts=ts or webhook.received_at_ms or None,
        data=payload,
    )
