"""Slack: ``X-Slack-Signature: v0=<hex>`` over ``v0:{X-Slack-Request-Timestamp}:{body}``.

HMAC-SHA256 with the app's signing secret and a window of ``tolerance`` (300 s) in both
directions, as ``slack_sdk.signature.SignatureVerifier`` does (the tests cross-check it). The
signature is checked before the timestamp, so a forged request learns nothing but "mismatch".

Bodies are JSON (Events API: ``event_callback``, ``url_verification``, ``app_rate_limited``) or
form-encoded (slash commands; interactivity carries a JSON object in its ``payload`` field), so
``body_kind`` is ``"bytes"`` and :meth:`SlackProvider.check_payload` checks whichever it is.
Following Bolt, an ``ssl_check=1`` form POST is answered (empty 200) before verification, and a
verified ``url_verification`` is answered with its challenge; neither becomes an event.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any
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
    signing_time,
)
from gateway.webhook import PayloadError, Webhook, json_object

TIMESTAMP_HEADER = "x-slack-request-timestamp"
SIGNATURE_HEADER = "x-slack-signature"
VERSION = "v0"
MAX_TIMESTAMP_DIGITS = 12


def looks_like_json(body: bytes) -> bool:
    """Whether Slack sent ``body`` as JSON (Events API) rather than a form."""
    return body.lstrip()[:1] in (b"{", b"[")


def parse_form(body: bytes) -> dict[str, str]:
    """A form-encoded body, strictly parsed (last value wins); :class:`PayloadError` else."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("Slack form body is not UTF-8") from None
    try:
        return dict(parse_qsl(text, keep_blank_values=True, strict_parsing=True))
    except ValueError:
        raise PayloadError("Slack body is neither a JSON object nor a form") from None


def parse_payload(body: bytes) -> dict[str, Any]:
    """What the request carries: the JSON object, a form's ``payload`` JSON object, or the form.

    Raises :class:`PayloadError` when the body is none of those.
    """
    if not body.strip():
        raise PayloadError("Slack body is empty")
    if looks_like_json(body):
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise PayloadError("Slack JSON body is not valid JSON") from None
        if not isinstance(payload, dict):
            raise PayloadError("Slack JSON body must be an object")
        return payload
    form = parse_form(body)
    if "payload" not in form:
        return dict(form)
    return json_object(form["payload"], "Slack form field 'payload'")


@register_provider
class SlackProvider(Provider):
    """Slack Events API, interactivity and slash commands."""

    name = "slack"
    body_kind = "bytes"
    verification = "`X-Slack-Signature: v0=<hex>` HMAC-SHA256 of `v0:{ts}:{body}`"
    handshake_summary = "`url_verification` challenge, `ssl_check`"
    dedup_summary = "`event_id` (Events API)"
    signs_timestamp = True
    env_var = "SLACK_SIGNING_SECRET"

    def verify(self, body: bytes, headers: Mapping[str, str], *, now: float | None = None) -> None:
        timestamp = headers.get(TIMESTAMP_HEADER, "").strip()
        signature = headers.get(SIGNATURE_HEADER, "").strip()
        if not timestamp:
            raise MissingSignature("X-Slack-Request-Timestamp header is missing")
        if not signature:
            raise MissingSignature("X-Slack-Signature header is missing")
        if (
            not (timestamp.isascii() and timestamp.isdigit())
            or len(timestamp) > MAX_TIMESTAMP_DIGITS
        ):
            raise MalformedSignature("X-Slack-Request-Timestamp is not a Unix time in seconds")
        # A repeated header arrives joined with ", ": every part is a candidate.
        received = [part.strip() for part in signature.split(",")]
        if not all(
            part.startswith(f"{VERSION}=") and part.isascii() and part.isprintable()
            for part in received
        ):
            raise MalformedSignature("X-Slack-Signature must look like v0=<hex>")
        base = f"{VERSION}:{timestamp}:".encode() + body
        expected = [
            f"{VERSION}=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
            for secret in self.secrets
        ]
        if not any_signature_matches(expected, received):
            raise SignatureMismatch("X-Slack-Signature does not match any configured secret")
        check_timestamp(int(timestamp), self.tolerance, now)

    def sign(
        self,
        body: bytes,
        *,
        timestamp: int | None = None,
        method: str = "POST",
        url: str | None = None,
    ) -> dict[str, str]:
        """``X-Slack-Request-Timestamp`` and ``X-Slack-Signature: v0=...``; JSON or form."""
        ts = str(signing_time(timestamp))
        base = f"{VERSION}:{ts}:".encode() + body
        digest = hmac.new(self.secrets[0].encode(), base, hashlib.sha256).hexdigest()
        kind = "application/json" if looks_like_json(body) else "application/x-www-form-urlencoded"
        return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: f"{VERSION}={digest}", "content-type": kind}

    @classmethod
    def secret_problem(cls, secret: str) -> str | None:
        """A token (``xoxb-``, ``xoxp-``, ...) is not the app's signing secret."""
        if secret.startswith(("xoxb-", "xoxp-", "xoxa-", "xoxe", "xapp-")):
            return (
                "is a Slack token, not the app's signing secret (Basic Information > "
                "App Credentials > Signing Secret)"
            )
        return None

    def pre_verify_reply(self, body: bytes, headers: Mapping[str, str]) -> Reply | None:
        """Slack's ``ssl_check=1`` probe gets an empty 200, unverified, as Bolt answers it."""
        if b"ssl_check" not in body or looks_like_json(body):
            return None
        try:
            form = parse_form(body)
        except PayloadError:
            return None
        return Reply(200, None) if form.get("ssl_check") == "1" else None

    def check_payload(self, webhook: Webhook) -> None:
        """JSON must be an object, a form must parse, a form's ``payload`` must be an object."""
        payload = parse_payload(webhook.body)
        if payload.get("type") == "url_verification" and not isinstance(
            payload.get("challenge"), str
        ):
            raise PayloadError("Slack url_verification has no challenge string")

    def handshake(self, webhook: Webhook) -> Reply | None:
        """Answer ``url_verification`` with its challenge (the request was verified first)."""
        if not looks_like_json(webhook.body):
            return None
        payload = parse_payload(webhook.body)
        if payload.get("type") != "url_verification":
            return None
        return Reply(200, {"challenge": payload.get("challenge")})

    def delivery_id(self, webhook: Webhook) -> str | None:
        """``event_id`` of an ``event_callback`` (kept on retries); else ``trigger_id``."""
        payload = parse_payload(webhook.body)
        key = "event_id" if payload.get("type") == "event_callback" else "trigger_id"
        value = payload.get(key)
        return value if isinstance(value, str) and value else None
