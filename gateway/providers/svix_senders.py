"""Senders that sign as Standard Webhooks: ``clerk``, ``resend`` (through Svix), ``openai`` and
``replicate`` (``webhook-*`` headers), one class each.

Each is the ``standard`` verifier (``svix-*`` or ``webhook-*`` headers, ``v1`` HMAC-SHA256 with
the base64 key of a ``whsec_`` secret, timestamp window both ways) under its own name, so that
``CLERK_WEBHOOK_SECRET``, ``OPENAI_WEBHOOK_SECRET``, ... enable ``/webhooks/clerk``,
``/webhooks/openai``, ... and events are named ``clerk/...``, ``openai/...``.
"""

from __future__ import annotations

from gateway.providers import register_provider
from gateway.providers.standard import SECRET_PREFIX, StandardWebhooksProvider, b64decode


class SvixSender(StandardWebhooksProvider):
    """A sender that signs with Svix: the signing secret must be a ``whsec_`` value."""

    verification = (
        "`svix-signature: v1,<base64>` HMAC-SHA256 of `{svix-id}.{svix-timestamp}.{body}`"
    )
    handshake_summary = "none"
    dedup_summary = "`svix-id` (the message id, kept on retries)"
    signs_timestamp = True

    @classmethod
    def secret_problem(cls, secret: str) -> str | None:
        if not secret.startswith(SECRET_PREFIX):
            return f"{cls.name}: the signing secret starts with whsec_"
        try:
            b64decode(secret.removeprefix(SECRET_PREFIX))
        except ValueError:
            return f"{cls.name}: the signing secret is whsec_ followed by base64"
        return None


@register_provider
class ClerkProvider(SvixSender):
    """Clerk (Dashboard → Webhooks → Signing Secret)."""

    name = "clerk"


@register_provider
class ResendProvider(SvixSender):
    """Resend (Webhooks → the endpoint's signing secret)."""

    name = "resend"


class StandardSender(SvixSender):
    """A sender that signs with the spec's own ``webhook-*`` header names."""

    verification = (
        "`webhook-signature: v1,<base64>` HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`"
    )
    dedup_summary = "`webhook-id` (the message id, kept on retries)"


@register_provider
class OpenAIProvider(StandardSender):
    """OpenAI (platform settings → Webhooks → the endpoint's signing secret)."""

    name = "openai"


@register_provider
class ReplicateProvider(StandardSender):
    """Replicate (the account's secret from ``GET /v1/webhooks/default/secret``)."""

    name = "replicate"
