"""Discord: ed25519 ``X-Signature-Ed25519`` over ``X-Signature-Timestamp`` + body, and its PINGs.

One provider serves both HTTP surfaces of a Discord app, which sign alike with the app's
**public key** (``DISCORD_WEBHOOK_SECRET``: the 64 hex characters of the Developer Portal's
*General Information* page):

- **Webhook events** (``{"version": 1, "type": 1, "event": {...}}``): the PING sent when the
  *Webhooks* endpoint URL is saved (``type: 0``) is answered ``204`` with no body, as Discord's
  docs require; events are stored and acknowledged ``204`` too.
- **Interactions** (the *Interactions Endpoint URL*): the PING (``type: 1``, no ``event``) is
  answered ``{"type": 1}`` (PONG); any other interaction is stored and answered with a
  *deferred* response (``type 5`` for commands and modal submits, ``6`` for components, empty
  choices for autocomplete) so a function can follow up with the interaction token.

Both PINGs are answered only after the signature verified (Discord sends mis-signed requests on
purpose and expects 401). The timestamp is checked against ``tolerance`` in both directions.
The gateway holds only the public key, so it cannot sign (``sign`` raises).
"""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.providers import Reply, joined_key, register_provider
from gateway.providers.generic_hmac import HmacProvider
from gateway.webhook import Webhook

WEBHOOK_PING = 0
WEBHOOK_EVENT = 1
INTERACTION_PING = 1
#: interaction type -> the deferred response Discord accepts for it
DEFERRED: dict[int, dict[str, Any]] = {
    2: {"type": 5},  # APPLICATION_COMMAND -> DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
    3: {"type": 6},  # MESSAGE_COMPONENT -> DEFERRED_UPDATE_MESSAGE
    4: {"type": 8, "data": {"choices": []}},  # AUTOCOMPLETE -> no choices
    5: {"type": 5},  # MODAL_SUBMIT -> DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
}
JSON_HEADERS = {"content-type": "application/json"}


def is_interaction(payload: dict[str, Any]) -> bool:
    """Interactions (PING is ``type`` 1) carry no ``event``; webhook events' PING is ``type`` 0."""
    return "event" not in payload and payload.get("type") != WEBHOOK_PING


def event_key(payload: Any) -> str | None:
    """The dedup id: an interaction's ``id``, else ``<type>-<timestamp>-<data id or user id>``.

    Webhook events have no id; Discord's retries resend the same event body.
    """
    if not isinstance(payload, dict):
        return None
    if is_interaction(payload):
        return joined_key(payload.get("id"))
    event = payload.get("event")
    if not isinstance(event, dict):
        return None
    data = event.get("data")
    ident: object = payload.get("application_id")
    if isinstance(data, dict):
        user = data.get("user")
        ident = data.get("id") or (user.get("id") if isinstance(user, dict) else None) or ident
    return joined_key(event.get("type"), event.get("timestamp"), ident)


@register_provider
class DiscordProvider(HmacProvider):
    """Discord app webhook events and interactions."""

    name = "discord"
    body_kind = "json"
    env_var = None
    signs_timestamp = True
    verification = (
        "`X-Signature-Ed25519` (hex) ed25519 over `X-Signature-Timestamp` + body (app public key)"
    )
    handshake_summary = (
        "PING answered after verification: 204 (webhook events), PONG (interactions)"
    )
    dedup_summary = "interaction `id`; event `type`-`timestamp`-data id"
    preset: ClassVar[dict[str, Any]] = {
        "header": "X-Signature-Ed25519",
        "mode": "ed25519",
        "encoding": "hex",
        "timestamp_header": "X-Signature-Timestamp",
        "signed_content": "{timestamp}{body}",
    }
    user_options = ()

    @classmethod
    def secret_problem(cls, secret: str) -> str | None:
        text = secret.strip()
        if len(text) != 64 or any(c not in "0123456789abcdefABCDEF" for c in text):
            return (
                "discord: the public key is 64 hex characters (Developer Portal, General "
                "Information, Public Key); the bot token and client secret are not it"
            )
        return super().secret_problem(text)

    def handshake(self, webhook: Webhook) -> Reply | None:
        payload = webhook.json
        kind = payload.get("type")
        if is_interaction(payload):
            if kind == INTERACTION_PING:
                return Reply(200, {"type": 1}, JSON_HEADERS, "Discord interactions PING: PONG")
            return None
        if kind == WEBHOOK_PING:
            return Reply(204, None, JSON_HEADERS, "Discord webhook events PING answered (204)")
        return None

    def accepted_reply(self, webhook: Webhook) -> Reply | None:
        payload = webhook.json
        if is_interaction(payload):
            deferred = DEFERRED.get(payload.get("type"))
            return Reply(200, deferred or {"type": 5}, JSON_HEADERS, "interaction deferred")
        return Reply(204, None, JSON_HEADERS, "webhook event acknowledged")

    def delivery_id(self, webhook: Webhook) -> str | None:
        return event_key(webhook.json)
