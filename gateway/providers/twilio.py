"""Twilio: ``X-Twilio-Signature``, HMAC of the URL Twilio called (and, for forms, the fields).

As the ``twilio`` package's ``RequestValidator`` (the reference, used by the tests):

- **Form webhooks**: HMAC over the URL followed by each field name and value, names sorted
  (:func:`gateway.providers.generic_hmac.sorted_form`).
- **JSON webhooks**: the URL carries ``bodySHA256=<hex SHA-256 of the body>``; the HMAC covers the
  URL only, and the body must match that hash (compared in constant time).
- The URL is tried **without and with its port** (``:443``/``:80`` added when absent, removed when
  present): Twilio's own signing is inconsistent about it.
- The key is the account **Auth Token** (or a SharedKey secret). HMAC-SHA1, base64; HMAC-SHA256
  when ``X-Twilio-Webhooks-Signature-Settings`` says ``algorithm=HMAC_SHA256``.

The gateway behind a proxy cannot see the URL Twilio called: the source's ``url`` option (zero
config: ``TWILIO_WEBHOOK_URL``) gives its scheme, host, port and path, as pasted in the Twilio
console; the query string is the one the request arrived with. Twilio signs no timestamp:
replays are bounded by ``I-Twilio-Idempotency-Token`` dedup and the body digest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

from gateway.providers import (
    DEFAULT_TOLERANCE,
    Inbound,
    MalformedSignature,
    MissingSignature,
    Provider,
    SignatureMismatch,
    any_signature_matches,
    register_provider,
)
from gateway.providers.generic_hmac import sorted_form
from gateway.providers.schemes import decode_signature
from gateway.webhook import PayloadError, Webhook

HEADER = "x-twilio-signature"
SETTINGS_HEADER = "x-twilio-webhooks-signature-settings"
IDEMPOTENCY_HEADER = "i-twilio-idempotency-token"
ALGORITHMS = {"HMAC_SHA1": hashlib.sha1, "HMAC_SHA256": hashlib.sha256}


def url_variants(url: str) -> list[str]:
    """``url`` without and with its default port, as Twilio's validator tries both."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    without = urlunsplit(parts._replace(netloc=prefix + host))
    with_port = urlunsplit(parts._replace(netloc=f"{prefix}{host}:{port}"))
    return [without, with_port]


def algorithm_of(settings: str | None) -> str:
    """The algorithm named in ``X-Twilio-Webhooks-Signature-Settings`` (default HMAC_SHA1)."""
    for part in (settings or "").split(","):
        name, sep, value = part.partition("=")
        if sep and name.strip() == "algorithm" and value.strip():
            return value.strip().upper()
    return "HMAC_SHA1"


@register_provider
class TwilioProvider(Provider):
    """Twilio Messaging, Voice and other webhooks (form and JSON bodies)."""

    name = "twilio"
    body_kind = "bytes"
    verification = (
        "`X-Twilio-Signature`: base64 HMAC-SHA1 of the URL + sorted form fields; JSON bodies by "
        "`bodySHA256` in the URL"
    )
    handshake_summary = "none"
    dedup_summary = "`I-Twilio-Idempotency-Token`"
    env_options: ClassVar[dict[str, str]] = {"url": "TWILIO_WEBHOOK_URL"}

    def __init__(
        self,
        secrets: Sequence[str],
        tolerance: int | None = DEFAULT_TOLERANCE,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(secrets, tolerance, options)
        unknown = sorted(set(self.options) - {"url"})
        if unknown:
            raise ValueError(f"twilio: unknown option {unknown[0]!r} (allowed: url)")
        url = self.options.get("url")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "twilio: set the url option (TWILIO_WEBHOOK_URL) to the public URL pasted in the"
                " Twilio console, e.g. https://hooks.example.com/webhooks/twilio"
            )
        self.url = url

    def signed_url(self, query_string: str) -> str:
        """The configured URL with the query string the request arrived with."""
        parts = urlsplit(str(self.url))
        return urlunsplit(parts._replace(query=query_string or parts.query, fragment=""))

    def verify(self, body: bytes, headers: Mapping[str, str], *, now: float | None = None) -> None:
        self.verify_request(Inbound("POST", body, headers, "", urlsplit(str(self.url)).query))

    def verify_request(self, request: Inbound, *, now: float | None = None) -> None:
        value = request.headers.get(HEADER, "").strip()
        if not value:
            raise MissingSignature("X-Twilio-Signature header is missing")
        digest = ALGORITHMS.get(algorithm_of(request.headers.get(SETTINGS_HEADER)))
        if digest is None:
            raise MalformedSignature(
                "X-Twilio-Webhooks-Signature-Settings names no known algorithm"
            )
        received = decode_signature(value, "base64")
        if received is None or len(received) != digest().digest_size:
            raise MalformedSignature("X-Twilio-Signature is not a base64 HMAC")
        url = self.signed_url(request.query_string)
        body_hash = parse_qs(urlsplit(url).query).get("bodySHA256")
        if body_hash:
            computed = hashlib.sha256(request.body).hexdigest()
            body_ok = hmac.compare_digest(computed.encode(), body_hash[0].encode())
            fields = b""
        else:
            body_ok = True
            fields = sorted_form(request.body)
        expected = [
            hmac.new(secret.encode(), variant.encode() + fields, digest).digest()
            for secret in self.secrets
            for variant in url_variants(url)
        ]
        if not (any_signature_matches(expected, [received]) and body_ok):
            raise SignatureMismatch("X-Twilio-Signature does not match any configured auth token")

    def check_payload(self, webhook: Webhook) -> None:
        """A form, or a JSON object when the URL carries ``bodySHA256``."""
        if webhook.body.lstrip()[:1] in (b"{", b"["):
            if not isinstance(webhook.json, dict):
                raise PayloadError("a Twilio JSON body must be an object")
        else:
            _ = webhook.form

    def delivery_id(self, webhook: Webhook) -> str | None:
        """``I-Twilio-Idempotency-Token``: the same on Twilio's retries of one delivery."""
        return webhook.header(IDEMPOTENCY_HEADER) or None

    def sign(
        self,
        body: bytes,
        *,
        timestamp: int | None = None,
        method: str = "POST",
        url: str | None = None,
    ) -> dict[str, str]:
        """``X-Twilio-Signature`` for a form ``body``: over the configured public URL, which is
        what Twilio signs and the gateway checks (``url``, where the request is posted, is not
        part of it: behind an ingress the two differ)."""
        target = str(self.url)
        mac = hmac.new(self.secrets[0].encode(), target.encode() + sorted_form(body), hashlib.sha1)
        return {
            HEADER: base64.b64encode(mac.digest()).decode(),
            "content-type": "application/x-www-form-urlencoded",
        }
