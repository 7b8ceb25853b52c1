"""Dropbox: the GET ``challenge`` and ``X-Dropbox-Signature``; built on the generic HMAC pieces.

As Dropbox's webhook reference (dropbox.com/developers/reference/webhooks) and its sample app
(dropbox/mdwebhook) describe them:

- Adding the webhook URI in the App Console, Dropbox sends ``GET ?challenge=<random string>``
  and expects it echoed within ten seconds, with ``Content-Type: text/plain`` and
  ``X-Content-Type-Options: nosniff`` (Dropbox's guard against reflected XSS). It carries no
  secret: any caller gets its (printable ASCII, bounded) challenge echoed, nothing else.
- Each notification is signed ``X-Dropbox-Signature: <hex>``, HMAC-SHA256 of the raw body with
  the **app secret** (``DROPBOX_WEBHOOK_SECRET``).
- The body only lists the accounts whose files changed (``{"list_folder": {"accounts": [...]},
  "delta": {"users": [...]}}``): no event id, no timestamp, and the next change of the same
  account sends the very same body. So there is no body-digest dedup (it would drop every
  later change of an account for the dedup window): each notification is a new event. A
  notification only says "call ``list_folder/continue``", which is idempotent with the stored
  cursor, so a Dropbox retry or a replayed body costs one extra cursor call, never a wrong one.
"""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.providers import Inbound, Reply, echo_value, register_provider
from gateway.providers.generic_hmac import HmacProvider
from gateway.providers.msgraph import nosniff_text


@register_provider
class DropboxProvider(HmacProvider):
    """Dropbox (user and team) file-change notifications."""

    name = "dropbox"
    body_kind = "json"
    env_var = None
    verification = "`X-Dropbox-Signature: <hex>` HMAC-SHA256 of the body (app secret)"
    handshake_summary = "GET `challenge` echoed as text/plain with `nosniff`"
    dedup_summary = "none (no id; no body digest: equal bodies are successive changes)"
    window_summary = "none: a repeat is a new change"
    handshake_methods = frozenset({"GET"})
    preset: ClassVar[dict[str, Any]] = {"header": "X-Dropbox-Signature"}
    user_options = ()

    def challenge(self, request: Inbound, *, now: float | None = None) -> Reply | None:
        if request.method != "GET":
            return super().challenge(request, now=now)
        value = echo_value(request.query.get("challenge"), "challenge")
        return nosniff_text(value, "Dropbox webhook verification: challenge echoed")

    def body_dedup(self) -> bool:
        return False  # the same body is every change of the same account (see the docstring)
