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
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from gateway.providers import register_provider
from gateway.providers.generic_hmac import HmacProvider

_API_KEY = re.compile(r"[0-9a-f]{32}")


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
