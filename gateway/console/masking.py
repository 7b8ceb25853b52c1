"""Keep secrets out of what the console stores and shows: header masking, secret scrubbing."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

MASK = "••••"

#: headers that carry signatures, credentials or sessions, whatever their value looks like
SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "stripe-signature",
        "x-slack-signature",
        "x-hub-signature",
        "x-hub-signature-256",
        "webhook-signature",
        "svix-signature",
        "x-shopify-hmac-sha256",
        "x-intercom-signature",
        "x-api-key",
        "x-gitlab-token",
    }
)
# any other header whose name says it is a credential
_SENSITIVE_NAME = re.compile(
    r"signature|secret|token|auth|hmac|passw|api[-_]?key|cookie|session", re.IGNORECASE
)
_MIN_SECRET = 4  # shorter "secrets" would mask ordinary text


def is_sensitive(name: str, extra: Iterable[str] = ()) -> bool:
    """Whether the header ``name`` must be masked (``extra``: configured signature headers)."""
    lower = name.lower()
    return (
        lower in SENSITIVE_HEADERS
        or lower in {e.lower() for e in extra}
        or _SENSITIVE_NAME.search(lower) is not None
    )


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of a configured secret replaced by the mask."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= _MIN_SECRET and secret in text:
            text = text.replace(secret, MASK)
    return text


def mask_headers(
    headers: Mapping[str, str], secrets: Iterable[str] = (), extra: Iterable[str] = ()
) -> dict[str, str]:
    """Headers with sensitive values replaced by the mask and any secret scrubbed elsewhere."""
    known = list(secrets)
    names = list(extra)
    return {
        name: MASK if is_sensitive(name, names) else scrub(value, known)
        for name, value in headers.items()
    }


def signature_headers(options: Mapping[str, object]) -> list[str]:
    """Header names a source's options declare (the generic HMAC provider's ``header``)."""
    return [str(v) for k, v in options.items() if k == "header" and isinstance(v, str)]
