"""Clerk, Resend, OpenAI and Replicate events: the Standard Webhooks mapping under their prefix.

- ``name``: ``clerk/<type>`` (``clerk/user.created``), ``resend/<type>``
  (``resend/email.delivered``), ``openai/<type>`` (``openai/response.completed``); Replicate
  sends the prediction (or training) itself, without a type: ``replicate/prediction.<status>``
  (``replicate/prediction.succeeded``), ``replicate/training.<status>`` when ``urls.get`` is a
  training's.
- ``id``: prefix + ``-`` + ``svix-id`` / ``webhook-id`` (the message id, kept on retries).
- ``ts``: Clerk's ``timestamp`` (ms); Resend's ``created_at`` (ISO-8601); OpenAI's ``created_at``
  (Unix seconds); Replicate's ``completed_at``, else ``started_at``, else ``created_at``; else the
  receive time.
- ``data``: the whole payload.
"""

from __future__ import annotations

from gateway import Event, Webhook, transform
from gateway.webhook import PayloadError
from transforms._time import to_ms
from transforms.standard import standard


def _iso_or_number_ms(value: object) -> int | None:
    return to_ms(value, numeric_text=False)  # as Standard Webhooks reads its timestamp


@transform("clerk")
def clerk(webhook: Webhook) -> Event:
    """One Clerk message -> one ``clerk/<type>`` event."""
    return standard(webhook)


def _timed_by_created_at(webhook: Webhook) -> Event:
    event = standard(webhook)
    created = to_ms(webhook.json.get("created_at"), numeric_text=False)
    return event.model_copy(update={"ts": created}) if created else event


@transform("resend")
def resend(webhook: Webhook) -> Event:
    """One Resend message -> one ``resend/<type>`` event, timed by ``created_at``."""
    return _timed_by_created_at(webhook)


@transform("openai")
def openai(webhook: Webhook) -> Event:
    """One OpenAI event -> one ``openai/<type>`` event, timed by ``created_at``."""
    return _timed_by_created_at(webhook)


@transform("replicate")
def replicate(webhook: Webhook) -> Event:
    """One Replicate prediction (or training) update -> ``replicate/<kind>.<status>``."""
    payload = webhook.json
    status = payload.get("status") if isinstance(payload, dict) else None
    if not isinstance(status, str) or not status:
        raise PayloadError("a Replicate webhook is a prediction or training with a 'status'")
    urls = payload.get("urls")
    get_url = urls.get("get") if isinstance(urls, dict) else None
    kind = "training" if isinstance(get_url, str) and "/trainings/" in get_url else "prediction"
    msg_id = webhook.header("webhook-id") or webhook.header("svix-id")
    prefix = webhook.prefix or webhook.source
    moments = (payload.get(key) for key in ("completed_at", "started_at", "created_at"))
    return Event(
        name=f"{prefix}/{kind}.{status.lower()}",
        id=f"{prefix}-{msg_id}" if msg_id else None,
        ts=next((ms for ms in map(_iso_or_number_ms, moments) if ms), None)
        or webhook.received_at_ms
        or None,
        data=payload,
    )
