"""Meta (WhatsApp Cloud API, Messenger, Instagram): ``X-Hub-Signature-256`` and ``hub.challenge``.

- Each notification is signed ``X-Hub-Signature-256: sha256=<hex>``, HMAC-SHA256 of the raw body
  with the **app secret** (``META_WEBHOOK_SECRET``); built on the generic HMAC pieces.
- Subscribing, Meta sends ``GET ?hub.mode=subscribe&hub.verify_token=...&hub.challenge=...``:
  the token (``META_VERIFY_TOKEN``, option ``verify_token``) is compared in constant time and the
  challenge is echoed as text. A wrong token is refused (401), never answered.
- Meta signs no timestamp and sends no event id: replays are bounded by the body-digest dedup.
"""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.providers import (
    Inbound,
    MissingSignature,
    Reply,
    SignatureMismatch,
    echo_value,
    register_provider,
    text_reply,
)
from gateway.providers.generic_hmac import HmacProvider
from gateway.providers.schemes import token_matches


@register_provider
class MetaProvider(HmacProvider):
    """Meta Graph API webhooks: WhatsApp Business, Messenger, Instagram, Pages."""

    name = "meta"
    body_kind = "json"
    env_var = None
    verification = "`X-Hub-Signature-256: sha256=<hex>` HMAC-SHA256 of the body (app secret)"
    handshake_summary = "GET `hub.challenge` echoed when `hub.verify_token` matches"
    dedup_summary = "none (no event id)"
    env_options: ClassVar[dict[str, str]] = {"verify_token": "META_VERIFY_TOKEN"}
    secret_options = ("verify_token",)
    handshake_methods = frozenset({"GET"})
    preset: ClassVar[dict[str, Any]] = {"header": "X-Hub-Signature-256", "prefix": "sha256="}
    user_options = ("verify_token",)

    def challenge(self, request: Inbound, *, now: float | None = None) -> Reply | None:
        if request.method != "GET":
            return None
        query = request.query
        if query.get("hub.mode") != "subscribe":
            raise MissingSignature("a GET must be Meta's subscribe check (hub.mode=subscribe)")
        expected = self.options.get("verify_token")
        if not isinstance(expected, str) or not expected:
            raise SignatureMismatch("no verify token is configured (META_VERIFY_TOKEN)")
        if not token_matches([expected], query.get("hub.verify_token", "")):
            raise SignatureMismatch("hub.verify_token does not match the configured verify token")
        value = echo_value(query.get("hub.challenge"), "hub.challenge")
        return text_reply(value, "Meta subscribe check: hub.challenge echoed")
