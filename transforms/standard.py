"""Standard Webhooks messages become ``<source>/<type>`` events.

One provider serves many senders (Clerk, Resend, any Svix customer), so the prefix is the
source's ``prefix`` from the config file, which defaults to the *source's name*, not the
provider's: ``prefix = "clerk"`` (or a source named ``clerk``) yields ``clerk/user.created``; the
zero-config source ``standard`` yields ``standard/<type>``.

- ``name``: ``prefix + "/" + type``.
- ``id``: ``prefix + "-" + webhook-id`` (or ``svix-id``): the message id, kept on retries.
- ``ts``: the payload's ``timestamp`` (the spec's ISO-8601 string, or a Unix number in seconds or
  milliseconds as Clerk sends), else the receive time.
- ``data``: the whole payload (``type``, ``timestamp``, ``data`` and any sender extras such as
  Clerk's ``instance_id``).
"""

from __future__ import annotations

from gateway import Event, Webhook, transform
from transforms._time import to_ms


@transform("standard")
def standard(webhook: Webhook) -> Event:
    """One Standard Webhooks message -> one event named after its source."""
    payload = webhook.json
    if not isinstance(payload, dict):
        raise ValueError("a Standard Webhooks payload is a JSON object")
    kind = payload.get("type")
    if not isinstance(kind, str) or not kind:
        raise ValueError("a Standard Webhooks payload has a non-empty string 'type'")
    msg_id = webhook.header("webhook-id") or webhook.header("svix-id")
    prefix = webhook.prefix or webhook.source
    return Event(
        name=f"{prefix}/{kind}",
        id=f"{prefix}-{msg_id}" if msg_id else None,
        ts=to_ms(payload.get("timestamp"), numeric_text=False) or webhook.received_at_ms or None,
        data=payload,
    )
