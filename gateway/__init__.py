"""webhook-gateway: verify provider webhooks, transform them into Inngest events, forward them.

This module is the plugin author's whole API::

    from gateway import Event, Webhook, transform

    @transform
    def my_transform(webhook: Webhook) -> Event | list[Event] | None: ...
"""

from gateway.events import Event
from gateway.plugins import TransformError, transform
from gateway.webhook import PayloadError, Webhook

__version__ = "0.1.0"

__all__ = ["Event", "PayloadError", "TransformError", "Webhook", "__version__", "transform"]
