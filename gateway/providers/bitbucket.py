"""Bitbucket Cloud: ``X-Hub-Signature: sha256=<hex>``, HMAC-SHA256 of the raw body with the
webhook's secret (unlike GitHub's header of the same name, which carries SHA-1).

``X-Event-Key`` (``repo:push``, ``pullrequest:created``) names the event; ``X-Request-UUID`` is
the dedup id. Bitbucket signs no timestamp and retries a delivery up to twice
(``X-Attempt-Number``), so replays and retries are also bounded by the body digest. A webhook
saved without a secret sends no signature and is refused.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from gateway.providers import register_provider
from gateway.providers.generic_hmac import HmacProvider
from gateway.webhook import PayloadError, Webhook

EVENT_HEADER = "x-event-key"


@register_provider
class BitbucketProvider(HmacProvider):
    """Bitbucket Cloud repository and workspace webhooks."""

    name = "bitbucket"
    body_kind = "json"
    env_var = None
    verification = "`X-Hub-Signature: sha256=<hex>` HMAC-SHA256 of the body (webhook secret)"
    handshake_summary = "none"
    dedup_summary = "`X-Request-UUID`"
    preset: ClassVar[dict[str, Any]] = {
        "header": "X-Hub-Signature",
        "prefix": "sha256=",
        "id_header": "X-Request-UUID",
    }
    user_options = ()

    def check_payload(self, webhook: Webhook) -> None:
        """``X-Event-Key`` must be present and the body a JSON object."""
        if not webhook.header(EVENT_HEADER):
            raise PayloadError("X-Event-Key header is missing")
        super().check_payload(webhook)

    def event_headers(self, event: str) -> dict[str, str]:
        """``repo.push`` is Bitbucket's ``repo:push`` event key."""
        return {
            EVENT_HEADER: event.replace(".", ":"),
            "x-request-uuid": str(uuid.uuid4()),
            "x-hook-uuid": str(uuid.uuid4()),
            "x-attempt-number": "1",
        }
