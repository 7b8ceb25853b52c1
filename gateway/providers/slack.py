"""Slack: ``X-Slack-Signature: v0=<hex>`` over ``v0:{X-Slack-Request-Timestamp}:{body}``.

HMAC-SHA256 with the app's signing secret, a 5-minute window in both directions (as
``slack_sdk.signature.SignatureVerifier``). Bodies are JSON (Events API) or form-encoded (slash
commands; interactivity carries JSON in a ``payload`` field). Following Bolt: an ``ssl_check``
form POST is answered before verification; ``url_verification`` is answered with its challenge
after verification.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import parse_qsl

import orjson

from gateway.providers import (
    MalformedSignature,
    MissingSignature,
    Provider,
    Reply,
    SignatureMismatch,
    any_signature_matches,
    check_timestamp,
    register_provider,
)
from gateway.webhook import PayloadError, Webhook

TIMESTAMP_HEADER = "x-slack-request-timestamp"
SIGNATURE_HEADER = "x-slack-signature"


def _looks_like_json(body: bytes) -> bool:
    return body.lstrip()[:1] in (b"{", b"[")


def parsed_payload(webhook: Webhook) -> dict[str, object]:
    """The request's JSON: the body itself, or a form's ``payload`` field, or the form."""
    if _looks_like_json(webhook.body):
        payload = webhook.json
        if not isinstance(payload, dict):
            raise PayloadError("Slack JSON body must be an object")
        return payload
    form = webhook.form
    if "payload" in form:
        try:
            inner = orjson.loads(form["payload"])
        except orjson.JSONDecodeError:
            raise PayloadError("Slack form field 'payload' is not valid JSON") from None
        if not isinstance(inner, dict):
            raise PayloadError("Slack form field 'payload' must be a JSON object")
        return inner
    return dict(form)


@register_provider
class SlackProvider(Provider):
    """Slack Events API, interactivity and slash commands."""

    name = "slack"
    body_kind = "bytes"

    def verify(self, body: bytes, headers: Mapping[str, str], *, now: float | None = None) -> None:
        timestamp = headers.get(TIMESTAMP_HEADER)
        signature = headers.get(SIGNATURE_HEADER)
        if not timestamp:
            raise MissingSignature("X-Slack-Request-Timestamp header is missing")
        if not signature:
            raise MissingSignature("X-Slack-Signature header is missing")
        if not timestamp.isascii() or not timestamp.isdigit():
            raise MalformedSignature("X-Slack-Request-Timestamp is not an integer")
        if not signature.isascii() or not signature.startswith("v0="):
            raise MalformedSignature("X-Slack-Signature must look like v0=<hex>")
        check_timestamp(int(timestamp), self.tolerance, now)
        base = b"v0:" + timestamp.encode() + b":" + body
        expected = [
            "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
            for secret in self.secrets
        ]
        if not any_signature_matches(expected, [signature]):
            raise SignatureMismatch("X-Slack-Signature does not match any configured secret")

    def pre_verify_reply(self, body: bytes, headers: Mapping[str, str]) -> Reply | None:
        if b"ssl_check=1" in body and not _looks_like_json(body):
            try:
                form = dict(parse_qsl(body.decode("utf-8")))
            except UnicodeDecodeError:
                return None
            if form.get("ssl_check") == "1":
                return Reply(200, None)
        return None

    def check_payload(self, webhook: Webhook) -> None:
        parsed_payload(webhook)

    def handshake(self, webhook: Webhook) -> Reply | None:
        if not _looks_like_json(webhook.body):
            return None
        payload = parsed_payload(webhook)
        if payload.get("type") == "url_verification":
            return Reply(200, {"challenge": payload.get("challenge")})
        return None

    def delivery_id(self, webhook: Webhook) -> str | None:
        payload = parsed_payload(webhook)
        for key in ("event_id", "trigger_id", "action_ts"):
            value = payload.get(key)
            if isinstance(value, str) and value:
                return value
        return None
