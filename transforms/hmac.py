"""Events from a generic ``hmac`` source, shaped by the source's options.

- ``name``: ``name_template`` rendered (default ``{prefix}/{type}``). Placeholders:
  ``{dotted.json.path}`` (digits index lists), ``{dotted.json.path:lower}``,
  ``{header:X-Name}``, ``{source}`` (the source's name) and ``{prefix}`` (the source's
  ``prefix``, which defaults to its name).
- ``id``: ``prefix + "-" +`` the ``id_header`` value or the ``id_path`` value; no id (no dedup)
  when neither is configured.
- ``ts``: the ``ts_path`` value (ISO-8601, or Unix seconds or ms), else the signed
  ``timestamp_header`` in ms, else the receive time.
- ``data``: the payload: the JSON object, or the form's fields when ``format = "form"``.

The provider (``gateway/providers/generic_hmac.py``) validates these options at start-up; the
transform reads them from ``webhook.options``. A path or header the template names but the
webhook lacks is an error, so the webhook is quarantined rather than misnamed.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from gateway import Event, Webhook, transform
from gateway.providers.generic_hmac import lookup

DEFAULT_NAME_TEMPLATE = "{prefix}/{type}"
_MS_THRESHOLD = 10**11  # larger Unix numbers are milliseconds (10**11 s is the year 5138)
_MIN_TS_MS, _MAX_TS_MS = 315_532_800_000, 4_102_444_800_000  # 1980..2100: the Event API's range


def _text(value: Any, what: str) -> str:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"{what} is {value!r}, not a non-empty string or an integer")


def _path_text(payload: Any, path: str, option: str) -> str:
    try:
        return _text(lookup(payload, path), f"{option} {path!r}")
    except KeyError:
        raise ValueError(f"{option}: the payload has no {path!r}") from None


def render_name(template: str, webhook: Webhook, payload: Any) -> str:
    """``name_template`` with its placeholders filled from ``webhook`` and ``payload``."""
    out: list[str] = []
    for text, field, spec, _ in string.Formatter().parse(template):
        out.append(text)
        if field is None:
            continue
        if field == "header":
            out.append(_text(webhook.header(spec or ""), f"name_template header {spec!r}"))
        elif field == "source" and not spec:
            out.append(webhook.source)
        elif field == "prefix" and not spec:
            out.append(webhook.prefix or webhook.source)
        else:
            value = _path_text(payload, field, "name_template")
            out.append(value.lower() if spec == "lower" else value)
    return "".join(out)


def _ms(value: Any) -> int | None:
    """Unix ms from an ISO-8601 string or a Unix number (s or ms); None if unusable."""
    ms: int | None = None
    if isinstance(value, str) and not value.isdigit():
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is not None:
            ms = int(moment.timestamp() * 1000)
    elif isinstance(value, str | int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except (OverflowError, ValueError):  # an integer beyond a float, or text that is none
            return None
        if math.isfinite(number):
            ms = int(number if number >= _MS_THRESHOLD else number * 1000)
    return ms if ms is not None and _MIN_TS_MS <= ms <= _MAX_TS_MS else None


def hmac_event(webhook: Webhook, options: Mapping[str, Any]) -> Event:
    """The event for ``webhook`` under a source's ``options`` (see the module docstring)."""
    if options.get("format") == "form":
        payload: Any = dict(webhook.form)
    else:
        payload = webhook.json
        if not isinstance(payload, dict):
            raise ValueError("the payload is not a JSON object")
    name = render_name(options.get("name_template", DEFAULT_NAME_TEMPLATE), webhook, payload)
    delivery: str | None = None
    if options.get("id_header"):
        delivery = webhook.header(options["id_header"]) or None
    elif options.get("id_path"):
        delivery = _path_text(payload, options["id_path"], "id_path")
    ts: int | None = None
    if options.get("ts_path"):
        try:
            ts = _ms(lookup(payload, options["ts_path"]))
        except KeyError:
            ts = None
    if ts is None and options.get("timestamp_header"):
        ts = _ms(webhook.header(options["timestamp_header"]))
    return Event(
        name=name,
        id=f"{webhook.prefix or webhook.source}-{delivery}" if delivery else None,
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
            ts=_ms(item.get(ts_key)) or webhook.received_at_ms or None,
            data=item,
        )
        for item in items
    ]


@transform("hmac")
def hmac(webhook: Webhook) -> Event:
    """One webhook from a generic HMAC source -> one event."""
    options: Mapping[str, Any] = webhook.options
    return hmac_event(webhook, options)
