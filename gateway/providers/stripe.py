"""Stripe: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...][,v0=<hex>]``.

The signature is checked by the ``stripe`` package's own verifier,
``stripe.WebhookSignature.verify_header``, once per configured secret: any ``v1`` in the header
may match any secret (while a secret is rolled Stripe sends one ``v1`` per active secret). The
package reads only the ``v1`` scheme, so test mode's fake ``v0`` is never a signature and a
header with nothing but ``v0`` is refused. Its refusals (``stripe.SignatureVerificationError``)
are mapped to the gateway's exceptions by :func:`refusal_for`.

Before the package sees it, :func:`parse_header` reads the header the same way it does (split on
``,``, then on ``=``, exact keys) but strictly: a malformed header must be a
:class:`MalformedSignature`, never an exception the package lets escape (a non-ASCII signature
makes it raise ``TypeError``), and ``t`` must be plain ASCII digits of a plausible length (the
package's ``int()`` also takes ``+5``, ``1_000`` and leading spaces; a huge ``t`` would overflow
the tolerance arithmetic). The timestamp checked here must also be the one the signature covers:
the package signs with the *first* ``t=``, so a header with a second ``t=`` is refused rather
than letting a fresh ``t`` vouch for an old signature.

Timestamps: the package only refuses ``t`` older than ``now - tolerance``, reads the wall clock
itself, and never refuses a timestamp from the future. The gateway calls it with
``tolerance=None`` and applies :func:`gateway.providers.check_timestamp` after the signature
matches: ``|now - t| <= tolerance`` in *both* directions (a signature dated ahead of time is a
request someone can hold and replay later), with an injectable clock. ``tolerance`` of ``0`` or
``None`` disables the check, as it does in stripe-python.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import stripe

from gateway.providers import (
    DEFAULT_TOLERANCE,
    MalformedSignature,
    MissingSignature,
    Provider,
    SignatureMismatch,
    VerificationError,
    check_timestamp,
    register_provider,
    signing_time,
)
from gateway.webhook import Webhook

HEADER = "stripe-signature"
SECRET_PREFIX = "whsec_"
#: prefixes of Stripe API keys, which are sometimes pasted where the signing secret belongs
API_KEY_PREFIXES = ("sk_", "rk_", "pk_")
#: digits allowed in ``t=``: Unix seconds have 10 until the year 2286; more is not a timestamp
MAX_TIMESTAMP_DIGITS = 12

# stripe-python's messages (stripe/_webhook.py), mapped by prefix; see tests for the pinning.
_REFUSALS: tuple[tuple[str, type[VerificationError], str], ...] = (
    (
        "No signatures found matching",
        SignatureMismatch,
        "no v1 signature matches any configured secret",
    ),
    (
        "No signatures found with expected scheme",
        MalformedSignature,
        "Stripe-Signature has no v1 signature (v0 and other schemes are not accepted)",
    ),
    (
        "Unable to extract timestamp and signatures",
        MalformedSignature,
        "Stripe-Signature cannot be parsed",
    ),
    ("No Stripe-Signature header", MissingSignature, "Stripe-Signature header is missing"),
)


def parse_header(header: str) -> int:
    """The signed timestamp of a ``Stripe-Signature`` value; :class:`MalformedSignature` else."""
    if not (header.isascii() and header.isprintable()):
        raise MalformedSignature("Stripe-Signature header has non-printable or non-ASCII bytes")
    timestamps = [
        value for key, _, value in (i.partition("=") for i in header.split(",")) if key == "t"
    ]
    if not timestamps:
        raise MalformedSignature("Stripe-Signature header has no timestamp (t=)")
    if len(timestamps) > 1:
        raise MalformedSignature("Stripe-Signature header has more than one timestamp (t=)")
    value = timestamps[0]
    if not value.isdigit() or len(value) > MAX_TIMESTAMP_DIGITS:
        raise MalformedSignature("Stripe-Signature timestamp (t=) is not a Unix time in seconds")
    return int(value)


def refusal_for(error: stripe.SignatureVerificationError) -> VerificationError:
    """The gateway's exception for a refusal by ``stripe.WebhookSignature.verify_header``.

    The package's message is not passed on: the reason is the gateway's own, fixed wording.
    An unrecognized message (a future stripe version) is treated as a mismatch.
    """
    message = str(error.user_message or "")
    for prefix, kind, reason in _REFUSALS:
        if message.startswith(prefix):
            return kind(reason)
    return SignatureMismatch("the stripe package refused the signature")


@register_provider
class StripeProvider(Provider):
    """Stripe webhook endpoints (snapshot and thin events)."""

    name = "stripe"
    body_kind = "json"
    verification = "`Stripe-Signature: t=...,v1=<hex>` HMAC-SHA256 of `{t}.{body}` (stripe package)"
    handshake_summary = "none"
    dedup_summary = "payload `id` (`evt_...`)"
    signs_timestamp = True

    def __init__(
        self,
        secrets: Sequence[str],
        tolerance: int | None = DEFAULT_TOLERANCE,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(secrets, tolerance, options)
        if any(not secret.strip() for secret in self.secrets):
            raise ValueError("stripe: a signing secret is empty (it should start with whsec_)")

    def verify(self, body: bytes, headers: Mapping[str, str], *, now: float | None = None) -> None:
        header = headers.get(HEADER, "")
        if not header.strip():
            raise MissingSignature("Stripe-Signature header is missing")
        timestamp = parse_header(header)
        try:
            payload = body.decode("utf-8")
        except UnicodeDecodeError:
            raise SignatureMismatch("body is not UTF-8, so Stripe cannot have signed it") from None
        for secret in self.secrets:
            try:
                stripe.WebhookSignature.verify_header(payload, header, secret, tolerance=None)
            except stripe.SignatureVerificationError as exc:
                refusal = refusal_for(exc)
                if isinstance(refusal, SignatureMismatch):
                    continue  # the next secret may match
                raise refusal from None
            break
        else:
            raise SignatureMismatch("no v1 signature matches any configured secret")
        check_timestamp(timestamp, self.tolerance, now)

    def sign(
        self,
        body: bytes,
        *,
        timestamp: int | None = None,
        method: str = "POST",
        url: str | None = None,
    ) -> dict[str, str]:
        """``Stripe-Signature: t=...,v1=...`` (first secret), made by the ``stripe`` package."""
        header = stripe.WebhookSignature.generate_signature_header(
            body.decode("utf-8"), self.secrets[0], signing_time(timestamp)
        )
        return {HEADER: header, "content-type": "application/json; charset=utf-8"}

    @classmethod
    def secret_problem(cls, secret: str) -> str | None:
        """A signing secret starts with ``whsec_`` (an API key ``sk_``/``rk_``/``pk_`` does not)."""
        if secret.startswith(API_KEY_PREFIXES):
            return (
                "is a Stripe API key, not the endpoint's signing secret (whsec_...; "
                "Dashboard > Developers > Webhooks > the endpoint > Signing secret)"
            )
        if not secret.startswith(SECRET_PREFIX):
            return "does not start with whsec_ (a Stripe endpoint's signing secret does)"
        return None

    def delivery_id(self, webhook: Webhook) -> str | None:
        """The event's ``evt_...`` id (snapshot and thin events alike); Stripe retries keep it."""
        payload = webhook.json
        event_id = payload.get("id") if isinstance(payload, dict) else None
        return event_id if isinstance(event_id, str) and event_id else None
