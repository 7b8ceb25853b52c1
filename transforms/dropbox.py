"""Dropbox notifications become one ``dropbox/list_folder.changed`` event.

A notification only says which accounts have changes to fetch
(``/2/files/list_folder/continue``): ``{"list_folder": {"accounts": [...]}, "delta": {"users":
[...]}}`` (``delta`` is the legacy v1 list of the same users).

- ``name``: ``dropbox/<kind>.changed``, the kind the body's first key other than ``delta``
  (``list_folder``; team apps' other kinds keep their own key), else ``delta``.
- ``id``: none. Dropbox sends no id, and the next change of the same account sends the same
  body, so a body digest would make Inngest drop it; a repeated notification only repeats an
  idempotent ``list_folder/continue``.
- ``ts``: Dropbox sends no time: the receive time.
- ``data``: the notification.
"""

from __future__ import annotations

import re

from gateway import Event, Webhook, transform

_KIND = re.compile(r"[a-z][a-z0-9_]*")


@transform("dropbox")
def dropbox(webhook: Webhook) -> Event:
    """One Dropbox notification -> one event."""
    payload = webhook.json
    if not isinstance(payload, dict) or not payload:
        raise ValueError("a Dropbox notification is an object such as {'list_folder': ...}")
    kinds = [key for key in payload if key != "delta"] or ["delta"]
    kind = "list_folder" if "list_folder" in payload else kinds[0].lower()
    if not _KIND.fullmatch(kind):
        raise ValueError(f"a Dropbox notification's first key is not a name: {kind[:40]!r}")
    return Event(
        name=f"dropbox/{kind}.changed",
        id=None,
        ts=webhook.received_at_ms or None,
        data=payload,
    )
