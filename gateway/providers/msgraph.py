"""Microsoft Graph change notifications: ``validationToken`` and ``clientState``.

As Microsoft's webhook guide (learn.microsoft.com/graph/change-notifications-delivery-webhooks)
describes them:

- **Validation**: creating (or validating a lifecycle URL of) a subscription, Graph POSTs to the
  notification URL with ``?validationToken=<opaque token>`` and expects, within 10 seconds, 200
  with ``Content-Type: text/plain`` and the URL-decoded token as the body. The request is not
  signed: it is answered before verification, with printable ASCII of at most
  :data:`gateway.providers.MAX_ECHO` characters only, and ``X-Content-Type-Options: nosniff``.
- **Notifications** carry no signature header: each item of the body's ``value`` list holds the
  ``clientState`` given when the subscription was created (``MSGRAPH_WEBHOOK_SECRET``,
  comma-separated while rotating). Every item's ``clientState`` is compared in constant time;
  one missing or wrong ``clientState`` refuses the whole request (Graph resends it, a forger
  cannot smuggle an item beside a genuine one). Lifecycle notifications (``lifecycleEvent``)
  are authenticated the same way.
- Graph signs no timestamp: replays are bounded by each item's dedup id (:func:`item_key`),
  not by a body digest: OneDrive's notification (``/me/drive/root`` ``updated``) and the
  lifecycle ones are the very same body for every later change or reminder, and each must
  reach the function (which runs a delta query, idempotent, for it).
  The JWT ``validationTokens`` of rich notifications are not checked (that needs Microsoft's
  signing keys fetched at run time); ``clientState`` is the check Microsoft requires.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from gateway.providers import (
    Inbound,
    MalformedSignature,
    MissingSignature,
    Provider,
    Reply,
    SignatureMismatch,
    echo_value,
    joined_key,
    register_provider,
    text_reply,
)
from gateway.providers.schemes import token_matches
from gateway.webhook import PayloadError, Webhook, loads_exact

QUERY = "validationToken"
MAX_CLIENT_STATE = 255  # Graph's documented maximum length of clientState


def nosniff_text(value: str, note: str) -> Reply:
    """A ``text/plain`` echo that browsers must not sniff as HTML (a reflected-XSS guard)."""
    reply = text_reply(value, note)
    return replace(reply, headers={**reply.headers, "x-content-type-options": "nosniff"})


def notifications(body: bytes | Any) -> list[dict[str, Any]]:
    """The items of a notification collection; :class:`MalformedSignature` when it is none."""
    try:
        payload = loads_exact(body) if isinstance(body, bytes) else body
    except (json.JSONDecodeError, PayloadError):
        raise MalformedSignature("body is not a Microsoft Graph notification collection") from None
    items = payload.get("value") if isinstance(payload, dict) else None
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise MalformedSignature("body has no value list of notifications to authenticate")
    return items


#: changes that happen once to a resource: an item for one of them names a single change
ONCE = frozenset({"created", "deleted"})


def item_key(item: Mapping[str, Any]) -> str | None:
    """A notification's dedup key: its ``id`` when Graph sends one (an optional property),
    else, for an item that names one change (``created``/``deleted``, or a resource version
    ``@odata.etag``), ``<subscriptionId>-<changeType>-<SHA-256 of the item, 32 hex>``: the same
    on Graph's resends. ``None`` for the rest: OneDrive's ``updated`` and the lifecycle
    notifications repeat the very same item for every later change or reminder."""
    ident = item.get("id")
    if isinstance(ident, str) and ident:
        return ident
    kind = item.get("changeType")
    data = item.get("resourceData")
    if kind not in ONCE and not (isinstance(data, dict) and data.get("@odata.etag")):
        return None
    canonical = json.dumps(item, sort_keys=True, separators=(",", ":"))  # exact big integers
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:32]
    return joined_key(item.get("subscriptionId"), kind, digest)


@register_provider
class MicrosoftGraphProvider(Provider):
    """Microsoft Graph change and lifecycle notifications delivered by webhook."""

    name = "msgraph"
    body_kind = "json"
    verification = "each `value[].clientState` equals the subscription's clientState"
    handshake_summary = "POST `?validationToken=` echoed as text/plain (before verification)"
    dedup_summary = (
        "each item's `id`, else `subscriptionId`-`changeType`-item digest when it names one"
        " change (no body digest: OneDrive repeats equal bodies)"
    )
    window_summary = "none: item ids"

    def challenge(self, request: Inbound, *, now: float | None = None) -> Reply | None:
        if request.method == "POST" and QUERY in request.query:
            token = echo_value(request.query[QUERY], "validationToken")
            return nosniff_text(token, "Microsoft Graph subscription validation: token echoed")
        return super().challenge(request, now=now)

    def body_dedup(self) -> bool:
        return False  # OneDrive and lifecycle notifications repeat equal bodies (item_key)

    def verify(self, body: bytes, headers: Mapping[str, str], *, now: float | None = None) -> None:
        for n, item in enumerate(notifications(body)):
            state = item.get("clientState")
            if not isinstance(state, str) or not state:
                raise MissingSignature(f"value[{n}].clientState is missing")
            if len(state) > MAX_CLIENT_STATE or not token_matches(self.secrets, state):
                raise SignatureMismatch(
                    f"value[{n}].clientState does not match any configured clientState"
                )

    def check_payload(self, webhook: Webhook) -> None:
        try:
            notifications(webhook.json)
        except MalformedSignature as exc:
            raise PayloadError(exc.reason) from None

    def sign(
        self,
        body: bytes,
        *,
        timestamp: int | None = None,
        method: str = "POST",
        url: str | None = None,
    ) -> dict[str, str]:
        """No headers: ``body`` verifies as it is when each ``clientState`` is the first secret."""
        try:
            items = notifications(body)
        except MalformedSignature as exc:
            raise NotImplementedError(f"msgraph: cannot sign: {exc.reason}") from None
        if any(item.get("clientState") != self.secrets[0] for item in items):
            raise NotImplementedError(
                "msgraph: notifications carry their clientState in the body: send a payload"
                " whose value[].clientState is the configured secret"
            )
        return {"content-type": "application/json"}

    @classmethod
    def secret_problem(cls, secret: str) -> str | None:
        if len(secret) > MAX_CLIENT_STATE:
            return f"msgraph: a clientState is at most {MAX_CLIENT_STATE} characters"
        return None
