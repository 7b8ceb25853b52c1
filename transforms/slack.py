"""Slack requests become ``slack/...`` events.

- Events API ``event_callback``: ``slack/<event.type>`` plus ``.<subtype>`` when the inner
  event has one (``slack/message.bot_message``); id ``slack-<event_id>``; ts ``event_time``.
- ``app_rate_limited``: ``slack/app_rate_limited``; id from team and minute.
- Interactivity (form field ``payload``): ``slack/<payload.type>``; id ``slack-<trigger_id>``,
  else ``slack-<action_ts>`` of the first action, else ``slack-<view.id>-<view.hash>``.
- Slash commands: ``slack/command.invoked``; id ``slack-<trigger_id>``.
- ``url_verification`` and ``ssl_check`` never become events.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway import Event, Webhook, transform


def _payload(webhook: Webhook) -> dict[str, Any]:
    if webhook.body.lstrip()[:1] == b"{":
        return dict(webhook.json)
    form = webhook.form
    if "payload" in form:
        return dict(orjson.loads(form["payload"]))
    return dict(form)


def _ts_ms(value: Any, fallback: int) -> int:
    try:
        return int(float(value) * 1000)
    except (TypeError, ValueError):
        return fallback


def _interaction_id(payload: dict[str, Any]) -> str | None:
    if payload.get("trigger_id"):
        return f"slack-{payload['trigger_id']}"
    actions = payload.get("actions") or []
    if actions and isinstance(actions[0], dict) and actions[0].get("action_ts"):
        return f"slack-{actions[0]['action_ts']}"
    if payload.get("action_ts"):
        return f"slack-{payload['action_ts']}"
    view = payload.get("view") or {}
    if view.get("id"):
        return f"slack-{view['id']}-{view.get('hash', '')}"
    return None


@transform("slack")
def slack(webhook: Webhook) -> Event | None:
    """One Slack request -> one event, or None for handshakes."""
    payload = _payload(webhook)
    now = webhook.received_at_ms
    kind = payload.get("type")
    if kind == "url_verification" or payload.get("ssl_check") == "1":
        return None
    if kind == "event_callback":
        inner = payload.get("event") or {}
        name = f"slack/{inner.get('type', 'unknown')}"
        if inner.get("subtype"):
            name += f".{inner['subtype']}"
        return Event(
            name=name,
            id=f"slack-{payload['event_id']}",
            ts=_ts_ms(payload.get("event_time"), now),
            data=payload,
        )
    if kind == "app_rate_limited":
        minute = payload.get("minute_rate_limited")
        return Event(
            name="slack/app_rate_limited",
            id=f"slack-rate-limited-{payload.get('team_id')}-{minute}",
            ts=_ts_ms(minute, now),
            data=payload,
        )
    if "command" in payload and kind is None:
        keys = (
            "command",
            "text",
            "user_id",
            "user_name",
            "channel_id",
            "channel_name",
            "team_id",
            "team_domain",
            "enterprise_id",
            "response_url",
            "trigger_id",
            "api_app_id",
        )
        data = {k: payload[k] for k in keys if k in payload}
        trigger = payload.get("trigger_id")
        return Event(
            name="slack/command.invoked",
            id=f"slack-{trigger}" if trigger else None,
            ts=now,
            data=data,
        )
    if isinstance(kind, str) and kind:
        actions = payload.get("actions") or [{}]
        action_ts = payload.get("action_ts") or (
            actions[0].get("action_ts") if isinstance(actions[0], dict) else None
        )
        return Event(
            name=f"slack/{kind}",
            id=_interaction_id(payload),
            ts=_ts_ms(action_ts, now),
            data=payload,
        )
    return None
