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

import string
from collections.abc import Mapping
from typing import Any

from gateway import Event, Webhook, transform
from gateway.providers.generic_hmac import lookup
from transforms._time import to_ms

DEFAULT_NAME_TEMPLATE = "{prefix}/{type}"


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
            ts = to_ms(lookup(payload, options["ts_path"]))
        except KeyError:
            ts = None
    if ts is None and options.get("timestamp_header"):
        ts = to_ms(webhook.header(options["timestamp_header"]))
    return Event(
        name=name,
        id=f"{webhook.prefix or webhook.source}-{delivery}" if delivery else None,
        ts=ts or webhook.received_at_ms or None,
        data=payload,
    )


@transform("hmac")
def hmac(webhook: Webhook) -> Event:
    """One webhook from a generic HMAC source -> one event."""
    options: Mapping[str, Any] = webhook.options
    return hmac_event(webhook, options)
