"""GitLab: the ``X-Gitlab-Token`` secret token, or GitLab's newer signing token.

A webhook's *secret token* is sent verbatim in ``X-Gitlab-Token`` and compared in constant
time (:func:`gateway.providers.schemes.token_matches`). A *signing token* (``whsec_...``, GitLab
18.3+) signs the request as Standard Webhooks (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``); a request carrying ``webhook-signature`` is verified that way against the
``whsec_`` secrets, with the timestamp window in both directions. Either kind may be configured,
comma-separated, in ``GITLAB_WEBHOOK_SECRET``.

The token proves only that the sender knows it: it does not bind the body, so replays are
bounded by the dedup id (``Idempotency-Key``, kept on retries; else ``X-Gitlab-Event-UUID``) and by
the body-digest dedup.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.providers import (
    DEFAULT_TOLERANCE,
    MissingSignature,
    Provider,
    SignatureMismatch,
    register_provider,
    signing_time,
    standard,
)
from gateway.providers.schemes import token_matches
from gateway.providers.standard import SECRET_PREFIX, StandardWebhooksProvider
from gateway.webhook import Webhook

TOKEN_HEADER = "x-gitlab-token"
EVENT_HEADER = "x-gitlab-event"
ID_HEADERS = ("idempotency-key", "x-gitlab-event-uuid")


@register_provider
class GitLabProvider(Provider):
    """GitLab project, group and system hooks."""

    name = "gitlab"
    body_kind = "json"
    verification = (
        "`X-Gitlab-Token` secret token (constant time), or Standard Webhooks with a `whsec_`"
        " signing token"
    )
    handshake_summary = "none"
    dedup_summary = "`Idempotency-Key`, else `X-Gitlab-Event-UUID`"

    def __init__(
        self,
        secrets: Sequence[str],
        tolerance: int | None = DEFAULT_TOLERANCE,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(secrets, tolerance, options)
        signing = [s for s in self.secrets if s.startswith(SECRET_PREFIX)]
        self._tokens = [s for s in self.secrets if not s.startswith(SECRET_PREFIX)]
        self._signed = StandardWebhooksProvider(signing, tolerance) if signing else None

    def verify(self, body: bytes, headers: Mapping[str, str], *, now: float | None = None) -> None:
        if headers.get("webhook-signature") and self._signed is not None:
            self._signed.verify(body, headers, now=now)
            return
        token = headers.get(TOKEN_HEADER)
        if not token:
            raise MissingSignature("X-Gitlab-Token header is missing")
        if not token_matches(self._tokens, token):
            raise SignatureMismatch("X-Gitlab-Token does not match any configured token")

    def delivery_id(self, webhook: Webhook) -> str | None:
        """``Idempotency-Key`` (the same on every retry), else ``X-Gitlab-Event-UUID``."""
        return next((v for h in ID_HEADERS if (v := webhook.header(h))), None)

    def sign(
        self,
        body: bytes,
        *,
        timestamp: int | None = None,
        method: str = "POST",
        url: str | None = None,
    ) -> dict[str, str]:
        """The secret-token header GitLab sends (or Standard Webhooks headers for a ``whsec_``)."""
        if not self._tokens:
            at = signing_time(timestamp)
            msg_id = f"msg_{uuid.uuid4().hex}"
            return {
                "webhook-id": msg_id,
                "webhook-timestamp": str(at),
                "webhook-signature": standard.sign(self.secrets[0], msg_id, at, body),
            }
        return {TOKEN_HEADER: self._tokens[0]}
