"""Mailgun: the signature travels inside the JSON body, ``signature.{timestamp,token,signature}``.

As Mailgun's "Securing webhooks" guide and the official SDK's
``mailgun.security.SecurityGuard.verify_webhook`` (``mailgun`` on PyPI; the tests check the
gateway against it): ``signature`` is the hex HMAC-SHA256 of ``timestamp + token`` (no
separator, the timestamp as sent) keyed with the domain's **HTTP webhook signing key**
(``MAILGUN_WEBHOOK_SECRET``). Events of a subaccount's domain also carry ``parent-signature``,
the same HMAC under the primary account's key: either may match any configured key.

The body is **not** signed: only the timestamp and the random 50-character ``token`` are. So the
timestamp is checked against ``tolerance`` in both directions, and the token is single-use
(:meth:`MailgunProvider.replay_key`): a second request with a seen token is a duplicate whole,
whatever its event data, as Mailgun's guide advises ("cache the token"). The dedup id is
``event-data.id``. Only the JSON webhooks are accepted (not the legacy form-encoded ones).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.providers import (
    MalformedSignature,
    MissingSignature,
    Provider,
    SignatureMismatch,
    any_signature_matches,
    check_timestamp,
    register_provider,
    signing_time,
)
from gateway.providers.schemes import decode_signature, hmac_digests, parse_timestamp
from gateway.webhook import Webhook

SIGNATURE_FIELDS = ("signature", "parent-signature")
MAX_TOKEN = 256  # Mailgun's tokens are 50 characters


def signature_block(body: bytes) -> dict[str, Any]:
    """The body's ``signature`` object; :class:`MissingSignature` when there is none."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MissingSignature("the body is not JSON, so it has no Mailgun signature") from None
    block = payload.get("signature") if isinstance(payload, dict) else None
    if not isinstance(block, dict):
        raise MissingSignature("the body has no signature object")
    return block


def mailgun_hmac(key: str, timestamp: str, token: str) -> str:
    """The hex HMAC-SHA256 of ``timestamp + token`` under ``key``: Mailgun's ``signature``."""
    return hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


@register_provider
class MailgunProvider(Provider):
    """Mailgun event webhooks (JSON, signature in the body)."""

    name = "mailgun"
    body_kind = "json"
    signs_timestamp = True
    default_tolerance = 900  # the SDK's max_age_seconds; Mailgun warns against a tight window
    verification = (
        "body `signature.signature` (or `parent-signature`): hex HMAC-SHA256 of"
        " `timestamp`+`token` (webhook signing key); the token is single-use"
    )
    handshake_summary = "none"
    dedup_summary = "`event-data.id`; a seen `signature.token` is a replay"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.tolerance:
            raise ValueError(
                "mailgun: tolerance must be above 0: the body is unsigned, so the timestamp"
                " window is what bounds a captured token"
            )

    def verify(self, body: bytes, headers: Mapping[str, str], *, now: float | None = None) -> None:
        block = signature_block(body)
        timestamp, token = block.get("timestamp"), block.get("token")
        if isinstance(timestamp, int) and not isinstance(timestamp, bool):
            timestamp = str(timestamp)
        if not isinstance(timestamp, str) or not timestamp:
            raise MissingSignature("signature.timestamp is missing")
        if not isinstance(token, str) or not token:
            raise MissingSignature("signature.token is missing")
        if len(token) > MAX_TOKEN:
            raise MalformedSignature(f"signature.token is longer than {MAX_TOKEN} characters")
        seconds = parse_timestamp(timestamp, "unix", "signature.timestamp")
        received = [
            raw
            for field in SIGNATURE_FIELDS
            if isinstance(text := block.get(field), str)
            and (raw := decode_signature(text, "hex")) is not None
            and len(raw) == 32
        ]
        if not received:
            raise MalformedSignature("signature.signature is not a hex HMAC-SHA256")
        content = (timestamp + token).encode()
        expected = hmac_digests([s.encode() for s in self.secrets], "sha256", content)
        if not any_signature_matches(expected, received):
            raise SignatureMismatch("signature.signature does not match any configured key")
        check_timestamp(seconds, self.tolerance, now)

    def delivery_id(self, webhook: Webhook) -> str | None:
        data = webhook.json.get("event-data")
        ident = data.get("id") if isinstance(data, dict) else None
        return ident if isinstance(ident, str) and ident else None

    def replay_key(self, webhook: Webhook) -> str | None:
        token = webhook.json["signature"]["token"]
        return f"token:{token}"

    def sign_body(self, body: bytes, *, timestamp: int | None = None) -> bytes:
        """``body`` with a fresh ``signature`` object under the first key, as Mailgun sends it."""
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict):
            raise NotImplementedError("mailgun: only JSON object bodies can be signed")
        stamp = str(signing_time(timestamp))
        token = secrets.token_hex(25)  # 50 characters, as Mailgun's
        payload["signature"] = {
            "token": token,
            "timestamp": stamp,
            "signature": mailgun_hmac(self.secrets[0], stamp, token),
        }
        return orjson.dumps(payload, option=orjson.OPT_INDENT_2)

    def sign(
        self,
        body: bytes,
        *,
        timestamp: int | None = None,
        method: str = "POST",
        url: str | None = None,
    ) -> dict[str, str]:
        """No headers: Mailgun signs inside the body (:meth:`sign_body` signs it)."""
        return {}
