"""Shopify webhooks become ``shopify/<topic>`` events, the topic's ``/`` turned into ``.``.

- ``name``: ``"shopify/" + X-Shopify-Topic`` with ``/`` -> ``.`` (``orders/create`` ->
  ``shopify/orders.create``).
- ``id``: ``"shopify-" + X-Shopify-Event-Id`` (kept on retries), else
  ``"shopify-" + X-Shopify-Webhook-Id``.

Each ``X-Shopify-*`` header may come as Shopify's newer ``shopify-*`` name instead.
- ``ts``: ``X-Shopify-Triggered-At`` (ISO-8601) in ms when present and valid, else the receive
  time.
- ``v``: ``X-Shopify-API-Version`` (``2024-07``), as Stripe events carry their API version.
- ``data``: the payload, plus ``shop_domain`` from ``X-Shopify-Shop-Domain`` when the payload has
  none (an app installed on many shops needs to know which one; Shopify's own GDPR payloads use
  the same key).
"""

from __future__ import annotations

from datetime import datetime

from gateway import Event, Webhook, transform
from gateway.providers.shopify import shopify_header


def _iso_ms(value: str | None) -> int | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None  # the header is not signed: a bad one must not lose the webhook
    if moment.tzinfo is None or not 1980 <= moment.year < 2100:  # the Event API's ts range
        return None
    return int(moment.timestamp() * 1000)


@transform("shopify")
def shopify(webhook: Webhook) -> Event:
    """One Shopify webhook -> one event."""
    headers = webhook.headers
    topic = shopify_header(headers, "x-shopify-topic")
    if not topic:
        raise ValueError("a Shopify webhook has an X-Shopify-Topic header")
    payload = webhook.json
    if not isinstance(payload, dict):
        raise ValueError("a Shopify payload is a JSON object")
    data = dict(payload)
    shop = shopify_header(headers, "x-shopify-shop-domain")
    if shop:
        data.setdefault("shop_domain", shop)
    delivery = shopify_header(headers, "x-shopify-event-id") or shopify_header(
        headers, "x-shopify-webhook-id"
    )
    triggered = _iso_ms(shopify_header(headers, "x-shopify-triggered-at"))
    return Event(
        name="shopify/" + topic.replace("/", "."),
        id=f"shopify-{delivery}" if delivery else None,
        ts=triggered or webhook.received_at_ms or None,
        v=shopify_header(headers, "x-shopify-api-version"),
        data=data,
    )
