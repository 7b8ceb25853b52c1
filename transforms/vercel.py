"""Vercel webhooks become ``vercel/<type>`` events, lower snake case.

- ``name``: ``"vercel/" + type`` with ``-`` as ``_`` (``vercel/deployment.created``,
  ``vercel/integration_configuration.permission_upgraded``).
- ``id``: ``"vercel-" + id`` (the delivery's id).
- ``ts``: ``createdAt`` (ms).
- ``data``: the body.
"""

from __future__ import annotations

from gateway import Event, Webhook, transform
from transforms._typed import typed_event


def _name(kind: str) -> str:
    return kind.lower().replace("-", "_")


@transform("vercel")
def vercel(webhook: Webhook) -> Event:
    """One Vercel webhook -> one event."""
    return typed_event(webhook, "vercel", name_of=_name, ts_paths=("createdAt",))
