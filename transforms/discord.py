"""Discord webhook events and interactions become ``discord/<noun>.<verb>`` events.

- Webhook events (``type: 1`` with an ``event``): ``name`` ``discord/`` + ``event.type`` lower
  case with its last ``_`` as the dot (``APPLICATION_AUTHORIZED`` -> ``application.authorized``,
  ``LOBBY_MESSAGE_CREATE`` -> ``lobby_message.create``); ``id`` ``discord-<type>-<timestamp>-
  <data id or user id>`` (Discord sends no event id; retries resend the same body); ``ts``
  ``event.timestamp`` (ISO-8601 in UTC, without an offset).
- Interactions: ``name`` ``discord/interaction.<kind>`` (``application_command``,
  ``message_component``, ``autocomplete``, ``modal_submit``); ``id`` ``discord-<interaction
  id>``; ``ts`` from the id (a snowflake holds its creation time).
- ``data``: the whole body.

PINGs are answered by the provider and never reach the transform.
"""

from __future__ import annotations

from typing import Any

from gateway import Event, Webhook, transform
from gateway.providers.discord import event_key, is_interaction
from transforms._time import to_ms, utc_ms

DISCORD_EPOCH_MS = 1_420_070_400_000
INTERACTIONS = {2: "application_command", 3: "message_component", 4: "autocomplete",
                5: "modal_submit"}  # fmt: skip


def _utc_ms(value: Any) -> int | None:
    """Discord's event timestamps are ISO-8601 in UTC, written without an offset."""
    return utc_ms(value) if isinstance(value, str) else None


def _snowflake_ms(value: Any) -> int | None:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 21:
        return to_ms((int(value) >> 22) + DISCORD_EPOCH_MS)
    return None


@transform("discord")
def discord(webhook: Webhook) -> Event:
    """One Discord webhook event or interaction -> one event."""
    payload = webhook.json
    if not isinstance(payload, dict):
        raise ValueError("a Discord body is a JSON object")
    key = event_key(payload)
    if is_interaction(payload):
        kind = INTERACTIONS.get(payload.get("type"))  # type: ignore[arg-type]
        if kind is None:
            raise ValueError(f"unknown Discord interaction type {payload.get('type')!r}")
        name, ts = f"discord/interaction.{kind}", _snowflake_ms(payload.get("id"))
    else:
        event = payload.get("event")
        kind = event.get("type") if isinstance(event, dict) else None
        if not isinstance(kind, str) or not kind:
            raise ValueError("a Discord webhook event has event.type")
        noun, _, verb = kind.lower().rpartition("_")
        name = f"discord/{noun}.{verb}" if noun else f"discord/{verb}.received"
        ts = _utc_ms(event.get("timestamp"))  # type: ignore[union-attr]
    return Event(
        name=name,
        id=f"discord-{key}" if key else None,
        ts=ts or webhook.received_at_ms or None,
        data=payload,
    )
