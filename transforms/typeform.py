"""Typeform webhooks become ``typeform/form_response.<verb>`` events.

- ``name``: from ``event_type``: ``form_response`` (a submitted form) ->
  ``typeform/form_response.submitted``; ``form_response_partial`` (a partial response, when
  the form sends them) -> ``typeform/form_response.partial``; any other type ``t`` ->
  ``typeform/t.received``.
- ``id``: ``"typeform-" + event_id``.
- ``ts``: ``form_response.submitted_at``, else ``form_response.landed_at`` (partials).
- ``data``: the body.
"""

from __future__ import annotations

from gateway import Event, Webhook, transform
from transforms._typed import typed_event

RESPONSE = "form_response"


def _name(kind: str) -> str:
    kind = kind.lower()
    if kind == RESPONSE:
        return f"{RESPONSE}.submitted"
    if kind.startswith(RESPONSE + "_"):
        return f"{RESPONSE}.{kind.removeprefix(RESPONSE + '_')}"
    return f"{kind}.received"


@transform("typeform")
def typeform(webhook: Webhook) -> Event:
    """One Typeform webhook -> one event."""
    return typed_event(
        webhook,
        "typeform",
        name_of=_name,
        ts_paths=("form_response.submitted_at", "form_response.landed_at"),
        type_key="event_type",
        id_key="event_id",
    )
