"""Build genuinely signed requests, each with the provider's own tooling where it has one."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import stripe
from slack_sdk.signature import SignatureVerifier


def stripe_headers(body: bytes, secret: str, t: int | None = None) -> dict[str, str]:
    """``Stripe-Signature`` made by the stripe package's own test-signing helper."""
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode("utf-8"), secret, timestamp=int(time.time()) if t is None else t
    )
    return {"Stripe-Signature": header, "Content-Type": "application/json"}


def slack_headers(body: bytes, secret: str, ts: int | None = None) -> dict[str, str]:
    """Slack's headers, the signature computed by ``slack_sdk``'s SignatureVerifier."""
    timestamp = str(int(time.time()) if ts is None else ts)
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    assert signature is not None
    content_type = (
        "application/json" if body.lstrip()[:1] == b"{" else "application/x-www-form-urlencoded"
    )
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature,
        "Content-Type": content_type,
    }


def intercom_headers(body: bytes, secret: str) -> dict[str, str]:
    """``X-Hub-Signature: sha1=<hex>`` per Intercom's published scheme."""
    digest = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    return {"X-Hub-Signature": f"sha1={digest}", "Content-Type": "application/json"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
