"""Sign requests the way each provider does, with the provider's own tooling where it has one.

``sign_*`` return header dicts with lower-case names: pass them straight to
``Provider.verify`` or to an HTTP client. ``t``/``ts`` default to the wall clock for tests that
go through a real server; unit tests pass a fixed value and an injected ``now``.
``stripe_headers``, ``slack_headers`` and ``intercom_headers`` are the same in wire case.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import standardwebhooks
import stripe
from slack_sdk.signature import SignatureVerifier


def sign_stripe(body: bytes, secret: str | Sequence[str], t: int | None = None) -> dict[str, str]:
    """``stripe-signature: t=<t>,v1=<hex>``, made by the stripe package.

    ``stripe.WebhookSignature.generate_signature_header`` makes the header for the first secret;
    each further secret adds one ``v1`` (``_compute_signature`` over ``"{t}.{body}"``), as Stripe
    does while a secret is rolled.
    """
    secrets = [secret] if isinstance(secret, str) else list(secret)
    timestamp = int(time.time()) if t is None else t
    payload = body.decode("utf-8")
    header = stripe.WebhookSignature.generate_signature_header(payload, secrets[0], timestamp)
    for extra in secrets[1:]:
        signature = stripe.WebhookSignature._compute_signature(f"{timestamp}.{payload}", extra)
        header += f",v1={signature}"
    return {"stripe-signature": header, "content-type": "application/json"}


def sign_slack(body: bytes, secret: str, ts: int | None = None) -> dict[str, str]:
    """Slack's timestamp and ``v0=`` signature, computed by ``slack_sdk``'s SignatureVerifier."""
    timestamp = str(int(time.time()) if ts is None else ts)
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    assert signature is not None
    json_body = body.lstrip()[:1] == b"{"
    return {
        "x-slack-request-timestamp": timestamp,
        "x-slack-signature": signature,
        "content-type": "application/json" if json_body else "application/x-www-form-urlencoded",
    }


def sign_intercom(body: bytes, secret: str) -> dict[str, str]:
    """``x-hub-signature: sha1=<hex>``: HMAC-SHA1 of the raw body, Intercom's published scheme."""
    digest = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    return {"x-hub-signature": f"sha1={digest}", "content-type": "application/json"}


def _wire_case(headers: dict[str, str]) -> dict[str, str]:
    return {"-".join(w.capitalize() for w in k.split("-")): v for k, v in headers.items()}


def stripe_headers(body: bytes, secret: str, t: int | None = None) -> dict[str, str]:
    """:func:`sign_stripe` with wire-case names (``Stripe-Signature``)."""
    return _wire_case(sign_stripe(body, secret, t))


def slack_headers(body: bytes, secret: str, ts: int | None = None) -> dict[str, str]:
    """:func:`sign_slack` with wire-case names (``X-Slack-Signature``)."""
    return _wire_case(sign_slack(body, secret, ts))


def intercom_headers(body: bytes, secret: str) -> dict[str, str]:
    """:func:`sign_intercom` with wire-case names (``X-Hub-Signature``)."""
    return _wire_case(sign_intercom(body, secret))


def b64(data: bytes) -> str:
    """Standard base64 text of ``data``."""
    return base64.b64encode(data).decode()


def sign_github(body: bytes, secret: str, event: str, delivery: str) -> dict[str, str]:
    """GitHub's documented headers: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of body>``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-Hub-Signature-256": f"sha256={digest}",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "Content-Type": "application/json",
    }


def sign_shopify(body: bytes, secret: str, topic: str, webhook_id: str) -> dict[str, str]:
    """Shopify's documented headers: ``X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256 of body>``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {
        "X-Shopify-Hmac-Sha256": b64(digest),
        "X-Shopify-Topic": topic,
        "X-Shopify-Webhook-Id": webhook_id,
        "Content-Type": "application/json",
    }


def sign_standard(body: bytes, secret: str, msg_id: str, ts: int | None = None) -> dict[str, str]:
    """``webhook-id/-timestamp/-signature``, signed by the ``standardwebhooks`` package."""
    timestamp = int(time.time()) if ts is None else ts
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    signature = standardwebhooks.Webhook(secret).sign(msg_id, moment, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": str(signature),
        "content-type": "application/json",
    }
