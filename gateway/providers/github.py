"""GitHub: ``X-Hub-Signature-256: sha256=<hex>``, HMAC-SHA256 of the raw body.

The legacy ``X-Hub-Signature`` (SHA-1) is never enough on its own: accepting it would be a
downgrade. GitHub signs no timestamp, so replays are bounded only by deduplication on
``X-GitHub-Delivery``. A webhook is sent as ``application/json`` or as
``application/x-www-form-urlencoded`` with the JSON in a ``payload`` field (the webhook's
"content type" setting); both are accepted. The ``ping`` sent when a webhook is created is
answered here and never becomes an event.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from collections.abc import Mapping
from typing import Any

from gateway.providers import (
    MalformedSignature,
    MissingSignature,
    Provider,
    Reply,
    SignatureMismatch,
    any_signature_matches,
    register_provider,
)
from gateway.webhook import PayloadError, Webhook, json_object

HEADER = "x-hub-signature-256"
EVENT_HEADER = "x-github-event"
DELIVERY_HEADER = "x-github-delivery"
PREFIX = "sha256="
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def sign(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    return PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def parse_header(header: str) -> list[str]:
    """The lower-case hex digests in an ``X-Hub-Signature-256`` value; MalformedSignature else.

    A repeated header arrives joined with ``", "``: each part is a candidate.
    """
    digests = []
    for part in (p.strip() for p in header.split(",")):
        digest = part.removeprefix(PREFIX)
        if digest == part or not _HEX64.fullmatch(digest):
            raise MalformedSignature("X-Hub-Signature-256 must look like sha256=<64 hex digits>")
        digests.append(digest.lower())
    return digests


def parsed_payload(webhook: Webhook) -> dict[str, Any]:
    """The delivery's JSON object: the body itself, or the form field ``payload``."""
    if webhook.body.lstrip()[:1] == b"{":
        payload = webhook.json
    else:
        form = webhook.form
        if "payload" not in form:
            raise PayloadError("GitHub body is neither JSON nor a form with a 'payload' field")
        payload = json_object(form["payload"], "GitHub form field 'payload'")
    if not isinstance(payload, dict):
        raise PayloadError("GitHub payload must be a JSON object")
    return payload


@register_provider
class GitHubProvider(Provider):
    """GitHub repository, organization and App webhooks."""

    name = "github"
    body_kind = "bytes"  # JSON or form-encoded: checked by check_payload
    verification = "`X-Hub-Signature-256: sha256=<hex>` HMAC-SHA256 of the body"
    handshake_summary = "`ping` -> 200"
    dedup_summary = "`X-GitHub-Delivery`"

    def verify(self, body: bytes, headers: Mapping[str, str], *, now: float | None = None) -> None:
        header = headers.get(HEADER, "").strip()
        if not header:
            raise MissingSignature("X-Hub-Signature-256 header is missing")
        received = parse_header(header)
        expected = [sign(secret, body).removeprefix(PREFIX) for secret in self.secrets]
        if not any_signature_matches(expected, received):
            raise SignatureMismatch("X-Hub-Signature-256 does not match any configured secret")

    def event_headers(self, event: str) -> dict[str, str]:
        """``pull_request.opened`` is GitHub's ``pull_request`` event, its action in the body."""
        return {"x-github-event": event.split(".")[0], "x-github-delivery": str(uuid.uuid4())}

    def sign(
        self,
        body: bytes,
        *,
        timestamp: int | None = None,
        method: str = "POST",
        url: str | None = None,
    ) -> dict[str, str]:
        """``X-Hub-Signature-256`` (and the legacy SHA-1 ``X-Hub-Signature`` GitHub still sends).

        The event and delivery headers name what happened, not who signed: the caller adds them.
        """
        secret = self.secrets[0].encode()
        legacy = hmac.new(secret, body, hashlib.sha1).hexdigest()
        json_body = body.lstrip()[:1] == b"{"
        return {
            HEADER: sign(self.secrets[0], body),
            "x-hub-signature": f"sha1={legacy}",
            "content-type": "application/json"
            if json_body
            else "application/x-www-form-urlencoded",
        }

    def check_payload(self, webhook: Webhook) -> None:
        """``X-GitHub-Event`` must be present and the body a JSON object (directly or in a form)."""
        if not webhook.header(EVENT_HEADER):
            raise PayloadError("X-GitHub-Event header is missing")
        parsed_payload(webhook)

    def handshake(self, webhook: Webhook) -> Reply | None:
        """The ``ping`` sent when a webhook is created or tested gets a 200, never an event."""
        if webhook.header(EVENT_HEADER) == "ping":
            return Reply(200, {"ok": True})
        return None

    def delivery_id(self, webhook: Webhook) -> str | None:
        """``X-GitHub-Delivery``, a GUID kept when a delivery is redelivered by hand."""
        return webhook.header(DELIVERY_HEADER) or None
