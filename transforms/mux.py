"""Mux webhooks become ``mux/<type>`` events (Mux's types are already dotted).

- ``name``: ``"mux/" + type`` (``mux/video.asset.ready``, ``mux/video.live_stream.active``).
- ``id``: ``"mux-" + id`` (the event's id, kept on Mux's retries).
- ``ts``: ``created_at`` (ISO-8601).
- ``data``: the body.
"""

from __future__ import annotations

from gateway import Event, Webhook, transform
from transforms._typed import typed_event


@transform("mux")
def mux(webhook: Webhook) -> Event:
    """One Mux webhook -> one event."""
    return typed_event(webhook, "mux", name_of=str.lower, ts_paths=("created_at",))
