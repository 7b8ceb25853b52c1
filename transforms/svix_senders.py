"""Clerk and Resend events: the Standard Webhooks mapping under their own prefix.

- ``name``: ``clerk/<type>`` (``clerk/user.created``), ``resend/<type>``
  (``resend/email.delivered``).
- ``id``: prefix + ``-`` + ``svix-id``.
- ``ts``: Clerk's ``timestamp`` (ms); Resend's ``created_at`` (ISO-8601); else the receive time.
- ``data``: the whole payload.
"""

from __future__ import annotations

from gateway import Event, Webhook, transform
from transforms.standard import _ms, standard


@transform("clerk")
def clerk(webhook: Webhook) -> Event:
    """One Clerk message -> one ``clerk/<type>`` event."""
    return standard(webhook)


@transform("resend")
def resend(webhook: Webhook) -> Event:
    """One Resend message -> one ``resend/<type>`` event, timed by ``created_at``."""
    event = standard(webhook)
    created = _ms(webhook.json.get("created_at"))
    return event.model_copy(update={"ts": created}) if created else event
