"""WorkOS events become ``workos/<event>`` events (WorkOS names are already ``noun.verb``).

- ``name``: ``"workos/" + event`` (``workos/dsync.user.created``,
  ``workos/authentication.sso_succeeded``).
- ``id``: ``"workos-" + id`` (the event id, the same on WorkOS's retries).
- ``ts``: ``created_at`` (ISO-8601) in ms.
- ``data``: the whole body (``id``, ``event``, ``data``, ``created_at``, ...).
"""

from __future__ import annotations

from gateway import Event, Webhook, transform
from transforms.hmac import hmac_event

OPTIONS = {"name_template": "{prefix}/{event:lower}", "id_path": "id", "ts_path": "created_at"}


@transform("workos")
def workos(webhook: Webhook) -> Event:
    """One WorkOS event -> one event."""
    return hmac_event(webhook, OPTIONS)
