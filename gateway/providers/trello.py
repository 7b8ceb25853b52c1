"""Trello: ``X-Trello-Webhook``, HMAC-SHA1 of the body followed by the callback URL.

As Trello's webhook guide (developer.atlassian.com/cloud/trello/guides/rest-api/webhooks)
describes it: "a base64 digest of an HMAC-SHA1 hash. The hashed content is the concatenation of
the full request body and the callbackURL exactly as it was provided during webhook creation.
The key used to sign this text is your application's secret" (``TRELLO_WEBHOOK_SECRET``: the
OAuth secret of the app, not its API key or a token). Built on the generic HMAC pieces.

The callback URL is the public one, which the gateway behind a proxy cannot see: the source's
``url`` option (zero-config ``TRELLO_WEBHOOK_URL``), byte for byte as given to Trello, query
included. Creating a webhook, Trello sends ``HEAD`` to the URL and needs 200: the receive route
answers ``HEAD`` for every configured source. Trello signs no timestamp: replays are bounded by
the action id and the body digest.

Non-ASCII bodies: the guide adds "because of certain defaults in the crypto utilities in node,
the payloads that we sign are treated as binary strings, not utf-8" (an en dash, U+2013, is
signed as the byte 0x13). So a signature is accepted over the raw UTF-8 bytes (what most
receivers compute) or over that Node ``binary`` form of the body (:func:`node_binary`).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, ClassVar

from gateway.providers import Inbound, SignatureMismatch, register_provider
from gateway.providers.generic_hmac import HmacProvider

_API_KEY = re.compile(r"[0-9a-f]{32}")


def node_binary(body: bytes) -> bytes | None:
    """``body`` as Node's ``binary`` (latin1) encoding writes its text: the low 8 bits of each
    UTF-16 code unit; ``None`` when the body is not UTF-8 text."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text.encode("utf-16-le", "surrogatepass")[::2]


@register_provider
class TrelloProvider(HmacProvider):
    """Trello webhooks (actions on boards, lists, cards, members)."""

    name = "trello"
    body_kind = "json"
    env_var = None
    verification = "`X-Trello-Webhook`: base64 HMAC-SHA1 of `{body}{callbackURL}` (app secret)"
    handshake_summary = "HEAD -> 200 (callback URL check)"
    dedup_summary = "`action.id`"
    env_options: ClassVar[dict[str, str]] = {"url": "TRELLO_WEBHOOK_URL"}
    preset: ClassVar[dict[str, Any]] = {
        "header": "X-Trello-Webhook",
        "algorithm": "sha1",
        "encoding": "base64",
        "signed_content": "{body}{url}",
        "id_path": "action.id",
    }
    user_options = ("url",)

    @classmethod
    def secret_problem(cls, secret: str) -> str | None:
        if _API_KEY.fullmatch(secret):
            return (
                "trello: 32 hex digits is the app's API key; the webhook key is its secret"
                " (64 hex digits, next to the key)"
            )
        return super().secret_problem(secret)

    def verify_request(self, request: Inbound, *, now: float | None = None) -> None:
        try:
            super().verify_request(request, now=now)
        except SignatureMismatch:
            binary = node_binary(request.body)
            if binary is None or binary == request.body:  # ASCII: both forms are the same
                raise
            super().verify_request(replace(request, body=binary), now=now)
