"""Twilio webhooks become ``twilio/<noun>.<status>`` events.

- ``name``: a Messaging webhook (``MessageSid``) -> ``twilio/message.<MessageStatus or SmsStatus>``
  (``twilio/message.received``, ``twilio/message.delivered``); a Voice webhook (``CallSid``) ->
  ``twilio/call.<CallStatus>`` (``twilio/call.in_progress``); a JSON body with a CloudEvents
  ``type`` (``com.twilio.messaging.message.delivered``) -> its last two segments
  (``twilio/message.delivered``); anything else -> ``twilio/webhook.received``.
- ``id``: ``"twilio-" + I-Twilio-Idempotency-Token`` (the same on Twilio's retries); without it,
  ``"twilio-" + <Sid> + "-" + <status>`` (a status callback is one per Sid and status).
- ``ts``: a JSON body's ``time``/``timestamp`` (ISO-8601), else the receive time (form webhooks
  carry no event time).
- ``data``: the form fields (last value wins) or the JSON object.
"""

from __future__ import annotations

from typing import Any

from gateway import Event, Webhook, transform
from transforms._naming import snake
from transforms._time import to_ms


def _name_and_key(data: dict[str, Any]) -> tuple[str, str | None]:
    if isinstance(data.get("type"), str) and data["type"].count(".") >= 2:
        noun, verb = data["type"].rsplit(".", 2)[-2:]
        return f"twilio/{snake(noun)}.{snake(verb)}", data.get("id")
    for sid, noun, statuses in (
        ("MessageSid", "message", ("MessageStatus", "SmsStatus")),
        ("CallSid", "call", ("CallStatus",)),
    ):
        if data.get(sid):
            status = next((data[s] for s in statuses if data.get(s)), "received")
            return f"twilio/{noun}.{snake(str(status))}", f"{data[sid]}-{snake(str(status))}"
    return "twilio/webhook.received", None


@transform("twilio")
def twilio(webhook: Webhook) -> Event:
    """One Twilio webhook -> one event."""
    if webhook.body.lstrip()[:1] == b"{":
        payload = webhook.json
        if not isinstance(payload, dict):
            raise ValueError("a Twilio JSON body is an object")
        data: dict[str, Any] = payload
    else:
        data = dict(webhook.form)
    name, key = _name_and_key(data)
    delivery = webhook.header("i-twilio-idempotency-token") or key
    ts = to_ms(data.get("time") or data.get("timestamp"))
    return Event(
        name=name,
        id=f"twilio-{delivery}" if delivery else None,
        ts=ts or webhook.received_at_ms or None,
        data=data,
    )
