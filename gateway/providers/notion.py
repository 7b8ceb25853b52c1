"""Notion: the ``verification_token`` handshake and ``X-Notion-Signature``.

As Notion's webhook reference (developers.notion.com/reference/webhooks) describes them:

- Creating a subscription (and on "Resend token"), Notion POSTs ``{"verification_token":
  "secret_..."}`` to the URL, **unsigned**: the token is the key of every later signature, and
  Notion asks the user to paste it back into the integration's Webhooks tab to verify the
  subscription. The gateway answers 200, stores nothing, and shows the token as the handshake
  note in the console and in a WARNING log line, so the operator can paste it into Notion and
  set ``NOTION_WEBHOOK_SECRET`` to it. The request is not trusted: it changes no configuration.
- Every event is signed ``X-Notion-Signature: sha256=<hex>``, HMAC-SHA256 of the raw body keyed
  by the verification token (``NOTION_WEBHOOK_SECRET``); built on the generic HMAC pieces.
- Notion signs no timestamp: replays are bounded by the event ``id`` and the body digest.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from gateway.providers import Inbound, Reply, echo_value, register_provider
from gateway.providers.generic_hmac import HmacProvider
from gateway.providers.schemes import token_matches
from gateway.webhook import PayloadError, json_object

log = logging.getLogger(__name__)
KEY = "verification_token"
MAX_HANDSHAKE = 4096  # a verification body is one short field: larger bodies are events
API_TOKEN_PREFIXES = ("ntn_",)  # Notion API (integration) tokens, not the verification token


def verification_token(body: bytes) -> str | None:
    """The ``verification_token`` of a Notion verification request, or ``None``."""
    if len(body) > MAX_HANDSHAKE or f'"{KEY}"'.encode() not in body:
        return None
    try:
        payload = json_object(body, "the body")
    except PayloadError:
        return None
    if "type" in payload or not isinstance(payload.get(KEY), str):
        return None  # an event that merely mentions the key
    return echo_value(payload[KEY], KEY)


@register_provider
class NotionProvider(HmacProvider):
    """Notion integration webhooks (page, database, data source and comment events)."""

    name = "notion"
    body_kind = "json"
    env_var = None
    verification = "`X-Notion-Signature: sha256=<hex>` HMAC-SHA256 of the body (verification token)"
    handshake_summary = "unsigned `verification_token` POST: 200, token shown in the console/log"
    dedup_summary = "payload `id`"
    preset: ClassVar[dict[str, Any]] = {
        "header": "X-Notion-Signature",
        "prefix": "sha256=",
        "id_path": "id",
    }
    user_options = ()

    def challenge(self, request: Inbound, *, now: float | None = None) -> Reply | None:
        token = verification_token(request.body) if request.method == "POST" else None
        if token is None:
            return super().challenge(request, now=now)
        if token_matches(self.secrets, token):
            note = "Notion verification_token received; it is already NOTION_WEBHOOK_SECRET"
        else:
            note = (
                f"Notion verification_token received (unsigned, anyone can send one): {token}"
                " -- paste it into Notion (the integration's Webhooks tab, Verify); only once"
                " Notion accepts it, set NOTION_WEBHOOK_SECRET to it"
            )
        log.warning(note, extra={"provider": self.name})
        return Reply(200, {"status": "verification_token received"}, note=note)

    @classmethod
    def secret_problem(cls, secret: str) -> str | None:
        if secret.startswith(API_TOKEN_PREFIXES):
            return (
                "notion: that is a Notion API token; use the webhook verification_token"
                " (secret_...), shown in the console when Notion sends it"
            )
        return super().secret_problem(secret)
