"""DocuSign Connect messages become ``docusign/<object>.<status>`` events.

- ``name``: ``event`` with its first ``-`` as the dot (``envelope-completed`` ->
  ``docusign/envelope.completed``, ``recipient-autoresponded`` ->
  ``docusign/recipient.autoresponded``).
- ``id``: ``"docusign-" + envelopeId + "-" + event + "-" + generatedDateTime``.
- ``ts``: ``generatedDateTime`` (ISO-8601), else the receive time.
- ``data``: the message.
"""

from __future__ import annotations

from gateway import Event, Webhook, transform
from gateway.providers.docusign import delivery_key
from transforms._time import to_ms


@transform("docusign")
def docusign(webhook: Webhook) -> Event:
    """One Connect message -> one event."""
    payload = webhook.json
    event = payload.get("event") if isinstance(payload, dict) else None
    if not isinstance(event, str) or "-" not in event:
        raise ValueError("a DocuSign Connect message has an event like envelope-completed")
    noun, _, status = event.lower().partition("-")
    key = delivery_key(payload)
    return Event(
        name=f"docusign/{noun}.{status.replace('-', '_')}",
        id=f"docusign-{key}" if key else None,
        ts=to_ms(payload.get("generatedDateTime")) or webhook.received_at_ms or None,
        data=payload,
    )
