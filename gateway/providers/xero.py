"""Xero: ``x-xero-signature``, the base64 HMAC-SHA256 of the body; "Intent to Receive" answered.

The key is the app's **webhook key** (developer portal → the app → Webhooks), used as text:
``XERO_WEBHOOK_SECRET``. Before Xero delivers events it checks the endpoint ("Intent to
Receive"): it posts signed payloads with an empty ``events`` list, some with a wrong signature,
and wants 200 for the right ones and 401 for the others. A verified empty ``events`` list is
answered 200 and never stored; a wrong signature is 401 as always. Xero wants no body in any
response (``empty_replies``). Each
request batches events of several resources: one event per ``events[]`` item. Xero signs no
timestamp and sends no event id: replays are bounded by the item's ``resourceId``,
``eventType`` and ``eventDateUtc`` and the body digest.
"""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.providers import Reply, joined_key, register_provider
from gateway.providers.generic_hmac import HmacProvider
from gateway.webhook import PayloadError, Webhook


def event_key(item: Any) -> str | None:
    """``<resourceId>-<eventType>-<eventDateUtc>``: one change of one resource."""
    if not isinstance(item, dict):
        return None
    return joined_key(item.get("resourceId"), item.get("eventType"), item.get("eventDateUtc"))


@register_provider
class XeroProvider(HmacProvider):
    """Xero webhooks (Accounting contacts, invoices, credit notes; app subscriptions)."""

    name = "xero"
    body_kind = "json"
    env_var = None
    verification = "`x-xero-signature`: base64 HMAC-SHA256 of the body (webhook key)"
    handshake_summary = "Intent to Receive: a signed empty `events` list -> 200, empty body"
    dedup_summary = "each event's `resourceId`-`eventType`-`eventDateUtc`"
    preset: ClassVar[dict[str, Any]] = {"header": "x-xero-signature", "encoding": "base64"}
    user_options = ()
    empty_replies = True  # Xero: "There is no body in the response", refusals included

    def check_payload(self, webhook: Webhook) -> None:
        events = webhook.json.get("events") if isinstance(webhook.json, dict) else None
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise PayloadError("a Xero webhook is an object with an events list of objects")

    def handshake(self, webhook: Webhook) -> Reply | None:
        if webhook.json["events"]:
            return None
        return Reply(200, None, note="Xero Intent to Receive answered")
