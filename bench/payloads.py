"""Realistic Stripe webhook bodies, each with its own ``evt_`` id, signed by the ``stripe`` package.

A body is ``prefix + event_id + suffix``: the id has a fixed length, so every request of a size
class has the same ``Content-Length`` and a load generator can assemble requests from pieces.
Stripe sends pretty-printed JSON with the event ``id`` first; so do these.
"""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import stripe

ID_LENGTH = 24  # characters after "evt_", like Stripe's
_PLACEHOLDER = "evt_" + "X" * ID_LENGTH
_ALNUM = string.ascii_letters + string.digits
USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"


def random_tag(length: int = 8) -> str:
    """A random alphanumeric tag that makes this bench run's ids its own."""
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def event_id(tag: str, n: int) -> str:
    """The ``n``-th event id of the run tagged ``tag``: ``evt_`` + 24 characters."""
    return f"evt_{tag}{n:0{ID_LENGTH - len(tag)}d}"


def _charge(i: int) -> dict[str, Any]:
    return {
        "id": f"ch_3Pq{i:021d}",
        "object": "charge",
        "amount": 2000 + i,
        "amount_captured": 2000 + i,
        "amount_refunded": 0,
        "balance_transaction": f"txn_3Pq{i:021d}",
        "billing_details": {
            "address": {
                "city": "Berlin",
                "country": "DE",
                "line1": "Unter den Linden 1",
                "line2": None,
                "postal_code": "10117",
                "state": None,
            },
            "email": "jenny.rosen@example.com",
            "name": "Jenny Rosen",
            "phone": None,
        },
        "captured": True,
        "created": 1718000000 + i,
        "currency": "eur",
        "customer": "cus_QHx1r2s3t4u5v6",
        "livemode": False,
        "paid": True,
        "payment_method": "pm_1Pq2r3s4t5u6v7w8x9y0z1a2",
        "payment_method_details": {
            "card": {
                "brand": "visa",
                "country": "DE",
                "exp_month": 8,
                "exp_year": 2027,
                "fingerprint": "Xt5EWLLDS7FJjR1c",
                "funding": "credit",
                "last4": "4242",
                "network": "visa",
            },
            "type": "card",
        },
        "status": "succeeded",
    }


def _payment_intent() -> dict[str, Any]:
    return {
        "id": "pi_3Pq2r3s4t5u6v7w8x9y0z1a2",
        "object": "payment_intent",
        "amount": 2000,
        "amount_capturable": 0,
        "amount_received": 2000,
        "application": None,
        "capture_method": "automatic",
        "client_secret": "pi_3Pq2r3s4t5u6v7w8x9y0z1a2_secret_Fz9oLq2r3s4t5u6v7w8x9y0z1",
        "confirmation_method": "automatic",
        "created": 1718000000,
        "currency": "eur",
        "customer": "cus_QHx1r2s3t4u5v6",
        "description": "Order #1042",
        "latest_charge": "ch_3Pq2r3s4t5u6v7w8x9y0z1a2",
        "livemode": False,
        "metadata": {"order_id": "1042", "cart_id": "c_77ab91"},
        "payment_method": "pm_1Pq2r3s4t5u6v7w8x9y0z1a2",
        "payment_method_types": ["card"],
        "receipt_email": "jenny.rosen@example.com",
        "shipping": {
            "address": {
                "city": "Berlin",
                "country": "DE",
                "line1": "Unter den Linden 1",
                "postal_code": "10117",
            },
            "name": "Jenny Rosen",
        },
        "status": "succeeded",
    }


def _line_item(i: int) -> dict[str, Any]:
    return {
        "id": f"il_1Pq{i:021d}",
        "object": "line_item",
        "amount": 1500 + i,
        "currency": "eur",
        "description": f"1 x Team plan seat #{i} (at EUR 15.00 / month)",
        "discountable": True,
        "invoice": "in_1Pq2r3s4t5u6v7w8x9y0z1a2",
        "livemode": False,
        "metadata": {"seat": str(i)},
        "period": {"end": 1720592000, "start": 1718000000},
        "plan": {"id": "price_1PqTeamMonthly", "interval": "month", "product": "prod_QHteam"},
        "proration": False,
        "quantity": 1,
        "subscription": "sub_1Pq2r3s4t5u6v7w8x9y0z1a2",
        "type": "subscription",
    }


def _event(event_type: str, obj: dict[str, Any], created: int) -> dict[str, Any]:
    return {
        "id": _PLACEHOLDER,
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": "req_Fz9oLq2r3s4t5u", "idempotency_key": "5c1e8f0a-6b2d-4e8a"},
        "type": event_type,
    }


def _render(event: dict[str, Any]) -> str:
    return json.dumps(event, indent=2)


def build_body(target_bytes: int, created: int) -> str:
    """A pretty-printed Stripe event of about ``target_bytes`` with the id placeholder in it."""
    if target_bytes <= 4096:
        pi = _payment_intent()
        event = _event("payment_intent.succeeded", pi, created)
        i = 0
        while len(_render(event).encode()) < target_bytes:
            pi["metadata"][f"note_{i}"] = "gift wrap requested; deliver after 17:00"
            i += 1
        return _render(event)
    invoice: dict[str, Any] = {
        "id": "in_1Pq2r3s4t5u6v7w8x9y0z1a2",
        "object": "invoice",
        "amount_due": 0,
        "currency": "eur",
        "customer": "cus_QHx1r2s3t4u5v6",
        "charge": _charge(0),
        "lines": {"object": "list", "data": [], "has_more": False},
        "status": "paid",
    }
    event = _event("invoice.paid", invoice, created)
    while len(_render(event).encode()) < target_bytes:
        invoice["lines"]["data"].append(_line_item(len(invoice["lines"]["data"])))
        invoice["amount_due"] += 1500
    return _render(event)


@dataclass(frozen=True)
class Template:
    """One size class: ``body = prefix + event_id + suffix``; every body has the same length."""

    label: str
    prefix: str
    suffix: str
    path: str = "/webhooks/stripe"

    @classmethod
    def make(cls, label: str, target_bytes: int, created: int) -> Template:
        body = build_body(target_bytes, created)
        prefix, placeholder, suffix = body.partition(_PLACEHOLDER)
        assert placeholder and _PLACEHOLDER not in suffix
        return cls(label, prefix, suffix)

    @property
    def body_length(self) -> int:
        return len(self.prefix.encode()) + 4 + ID_LENGTH + len(self.suffix.encode())

    def body(self, evt_id: str) -> str:
        return self.prefix + evt_id + self.suffix

    def head(self, host: str) -> str:
        """Request line and headers up to (not including) the Stripe-Signature value."""
        return (
            f"POST {self.path} HTTP/1.1\r\n"
            f"Host: {host}\r\n"
            f"User-Agent: {USER_AGENT}\r\n"
            "Accept: */*; q=0.5, application/xml\r\n"
            "Cache-Control: no-cache\r\n"
            "Content-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {self.body_length}\r\n"
            "Stripe-Signature: "
        )

    def signed_request(self, host: str, secret: str, evt_id: str, timestamp: int) -> bytes:
        """The whole HTTP/1.1 request, signed by ``stripe.WebhookSignature``."""
        body = self.body(evt_id)
        header = str(stripe.WebhookSignature.generate_signature_header(body, secret, timestamp))
        return (self.head(host) + header + "\r\n\r\n" + body).encode()

    def to_json(self) -> dict[str, str]:
        return {
            "label": self.label,
            "prefix": self.prefix,
            "suffix": self.suffix,
            "path": self.path,
        }

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Template:
        return cls(data["label"], data["prefix"], data["suffix"], data["path"])


def signature(template: Template, secret: str, evt_id: str, timestamp: int) -> str:
    """The ``v1`` signature of one body, computed by the ``stripe`` package."""
    header = str(
        stripe.WebhookSignature.generate_signature_header(template.body(evt_id), secret, timestamp)
    )
    return header.rpartition("v1=")[2]


def write_wrk_set(
    directory: Path,
    template: Template,
    host: str,
    secret: str,
    tag: str,
    first: int,
    count: int,
    timestamp: int,
) -> list[str]:
    """Pre-sign ``count`` requests for ``bench/wrk_stripe.lua``; returns their event ids.

    Files: ``head.bin`` (request up to ``t=<ts>,v1=``), ``mid.bin`` (end of headers and the body
    up to the id), ``tail.bin`` (the rest of the body) and ``signed.txt`` (``<sig> <id>`` lines).
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "head.bin").write_bytes(f"{template.head(host)}t={timestamp},v1=".encode())
    (directory / "mid.bin").write_bytes(("\r\n\r\n" + template.prefix).encode())
    (directory / "tail.bin").write_bytes(template.suffix.encode())
    ids = [event_id(tag, n) for n in range(first, first + count)]
    lines = [f"{signature(template, secret, i, timestamp)} {i}\n" for i in ids]
    (directory / "signed.txt").write_text("".join(lines))
    # The pieces must reassemble into exactly what the stripe package signed and verifies.
    sig, evt = lines[0].split()
    body = template.body(evt)
    stripe.WebhookSignature.verify_header(body, f"t={timestamp},v1={sig}", secret, tolerance=300)
    assembled = (
        (directory / "head.bin").read_bytes()
        + sig.encode()
        + (directory / "mid.bin").read_bytes()
        + evt.encode()
        + (directory / "tail.bin").read_bytes()
    )
    assert assembled == template.signed_request(host, secret, evt, timestamp)
    return ids
