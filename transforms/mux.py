"""Mux webhooks become ``mux/<type>`` events (Mux's types are already dotted:
``video.asset.ready``).

- ``name``: ``"mux/" + type`` (``mux/video.asset.ready``, ``mux/video.live_stream.active``).
- ``id``: ``"mux-" + id`` (the event's id, kept on Mux's retries).
- ``ts``: ``created_at`` (ISO-8601).
- ``data``: the body.
"""

from __future__ import annotations

from gateway import Event, Webhook, transform
from transforms.hmac import _ms


@transform("mux")
def mux(webhook: Webhook) -> Event:
    """One Mux webhook -> one event."""
    payload = webhook.json
    kind = payload.get("type") if isinstance(payload, dict) else None
    if not isinstance(kind, str) or "." not in kind:
        raise ValueError("a Mux webhook has a type like video.asset.ready")
    ident = payload.get("id")
    return Event(
        name="mux/" + kind.lower(),
        id=f"mux-{ident}" if isinstance(ident, str) and ident else None,
        ts=_ms(payload.get("created_at")) or webhook.received_at_ms or None,
        data=payload,
    )
