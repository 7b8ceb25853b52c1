"""X (Twitter) webhooks: Account Activity API and X Activity API deliveries, and the CRC.

- Each POST is signed ``x-twitter-webhooks-signature: sha256=<base64>``, HMAC-SHA256 of the raw
  body keyed with the app's **consumer secret** (API Key Secret, ``X_WEBHOOK_SECRET``); built on
  the generic HMAC pieces. X signs no timestamp: replays are bounded by the body-digest dedup.
- The Challenge-Response Check: X sends ``GET ?crc_token=<t>`` on registration and then
  periodically; the answer is ``{"response_token": "sha256=" + base64(HMAC-SHA256(consumer
  secret, t))}``. X does not sign the CRC request, so anyone can ask for it: since the answer is
  exactly a valid signature of a body equal to ``t``, tokens that could be such a body (with
  ``{`` or ``[``, which every accepted JSON body starts with) are refused.
"""

from __future__ import annotations

import base64
from typing import Any, ClassVar

from gateway.providers import (
    Inbound,
    MalformedSignature,
    MissingSignature,
    Reply,
    echo_value,
    register_provider,
)
from gateway.providers.generic_hmac import HmacProvider
from gateway.providers.schemes import hmac_digests
from gateway.webhook import Webhook

HEADER = "x-twitter-webhooks-signature"
BEARER_PREFIX = "AAAAAAAAAAAAAAAAAAAA"  # how app-only bearer tokens begin


def response_token(secret: str, crc_token: str) -> str:
    """The CRC answer for ``crc_token`` under the consumer secret."""
    [digest] = hmac_digests([secret.encode()], "sha256", crc_token.encode())
    return "sha256=" + base64.b64encode(digest).decode()


@register_provider
class XProvider(HmacProvider):
    """X Account Activity API and X Activity API webhooks."""

    name = "x"
    body_kind = "json"
    env_var = None
    verification = (
        "`x-twitter-webhooks-signature: sha256=<base64>` HMAC-SHA256 of the body (consumer secret)"
    )
    handshake_summary = "GET `crc_token` answered with `response_token`"
    dedup_summary = "XAA `event_uuid`; item ids per event"
    handshake_methods = frozenset({"GET"})
    preset: ClassVar[dict[str, Any]] = {"header": HEADER, "prefix": "sha256=", "encoding": "base64"}
    user_options = ()

    @classmethod
    def secret_problem(cls, secret: str) -> str | None:
        if secret.startswith(BEARER_PREFIX) or "%" in secret:
            return "x: that is a bearer token; the webhook key is the app's consumer secret"
        if not (secret.isascii() and secret.isalnum()):
            return "x: the consumer secret (API Key Secret) is letters and digits only"
        return None

    def challenge(self, request: Inbound, *, now: float | None = None) -> Reply | None:
        if request.method != "GET":
            return super().challenge(request, now=now)
        if "crc_token" not in request.query:
            raise MissingSignature("a GET must be X's CRC (crc_token)")
        token = echo_value(request.query.get("crc_token"), "crc_token")
        if "{" in token or "[" in token:
            raise MalformedSignature("crc_token must not contain { or [")
        return Reply(
            200,
            {"response_token": response_token(self.secrets[0], token)},
            note="X CRC answered",
        )

    def delivery_id(self, webhook: Webhook) -> str | None:
        data = webhook.json.get("data")
        uuid = data.get("event_uuid") if isinstance(data, dict) else None
        return str(uuid) if isinstance(uuid, str | int) and uuid != "" else None
