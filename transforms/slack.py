"""Slack requests become ``slack/...`` events.

- Events API ``event_callback``: ``slack/<event.type>`` plus ``.<subtype>`` when the inner
  event has one (``slack/message.bot_message``); id ``slack-<event_id>``; ts ``event_time``.
- ``app_rate_limited``: ``slack/app_rate_limited``; id from app, team and minute.
- Interactivity (form field ``payload``): ``slack/<payload.type>``; id ``slack-<trigger_id>``,
  else ``slack-<action_ts>`` (the payload's or its first action's), else
  ``slack-<view.id>-<view.hash>``, else none; ts from that ``action_ts``, else receive time.
- Slash commands (form with ``command``): ``slack/command.invoked``; id ``slack-<trigger_id>``.
- ``url_verification`` and ``ssl_check`` never become events.

``data`` is the envelope, the interaction payload or the command's form fields, always without
the deprecated verification ``token`` (a credential; requests are verified by signature).
"""

from __future__ import annotations

import json
from typing import Any

from gateway import Event, Webhook, transform

HANDSHAKES = frozenset({"url_verification"})


def _payload(webhook: Webhook) -> dict[str, Any]:
    if webhook.body.lstrip()[:1] == b"{":
        parsed = webhook.json
    elif "payload" in webhook.form:
        parsed = json.loads(webhook.form["payload"])
    else:
        parsed = dict(webhook.form)
    if not isinstance(parsed, dict):
        raise ValueError("a Slack request carries a JSON object")
    return parsed


def _ts_ms(value: Any) -> int | None:
    """Slack times are Unix seconds: ints (``event_time``) or strings (``"1548426417.840180"``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value * 1000
    if isinstance(value, str) and value:
        seconds, _, fraction = value.partition(".")
        if seconds.isdigit() and (not fraction or fraction.isdigit()):
            return int(seconds) * 1000 + int((fraction + "000")[:3])
    return None


def _without_token(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if key != "token"}


def _action_ts(payload: dict[str, Any]) -> str | None:
    if isinstance(payload.get("action_ts"), str):
        return str(payload["action_ts"])
    actions = payload.get("actions")
    if isinstance(actions, list) and actions and isinstance(actions[0], dict):
        first = actions[0].get("action_ts")
        return first if isinstance(first, str) else None
    return None


def _interaction_id(payload: dict[str, Any]) -> str | None:
    if payload.get("trigger_id"):
        return f"slack-{payload['trigger_id']}"
    action_ts = _action_ts(payload)
    if action_ts:
        return f"slack-{action_ts}"
    view = payload.get("view")
    if isinstance(view, dict) and view.get("id"):
        return f"slack-{view['id']}-{view.get('hash', '')}"
    return None


def _event_callback(envelope: dict[str, Any], received: int | None) -> Event:
    inner = envelope.get("event")
    if not isinstance(inner, dict) or not inner.get("type"):
        raise ValueError("event_callback without an inner event type")
    name = f"slack/{inner['type']}"
    if inner.get("subtype"):
        name += f".{inner['subtype']}"
    event_id = envelope.get("event_id")
    return Event(
        name=name,
        id=f"slack-{event_id}" if event_id else None,
        ts=_ts_ms(envelope.get("event_time")) or received,
        data=_without_token(envelope),
    )


def _command(form: dict[str, Any], received: int | None) -> Event:
    trigger = form.get("trigger_id")
    return Event(
        name="slack/command.invoked",
        id=f"slack-{trigger}" if trigger else None,
        ts=received,
        data=_without_token(form),
    )


@transform("slack")
def slack(webhook: Webhook) -> Event | None:
    """One Slack request -> one event, or None for handshakes."""
    payload = _payload(webhook)
    received = webhook.received_at_ms or None
    kind = payload.get("type")
    if kind in HANDSHAKES or payload.get("ssl_check") == "1":
        return None
    if kind == "event_callback":
        return _event_callback(payload, received)
    if kind == "app_rate_limited":
        minute = payload.get("minute_rate_limited")
        app, team = payload.get("api_app_id"), payload.get("team_id")
        return Event(
            name="slack/app_rate_limited",
            id=f"slack-rate-limited-{app}-{team}-{minute}",
            ts=_ts_ms(minute) or received,
            data=_without_token(payload),
        )
    if kind is None and "command" in payload:
        return _command(payload, received)
    if isinstance(kind, str) and kind:
        return Event(
            name=f"slack/{kind}",
            id=_interaction_id(payload),
            ts=_ts_ms(_action_ts(payload)) or received,
            data=_without_token(payload),
        )
    raise ValueError("not a Slack event, interaction or slash command")
