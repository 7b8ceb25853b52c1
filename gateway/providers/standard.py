"""Standard Webhooks (https://www.standardwebhooks.com; Svix and the senders built on it).

Headers ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and ``webhook-signature``: a
space-separated list of ``<version>,<base64>`` entries, any of which may match. The signed
content is ``{id}.{timestamp}.{body}``.

- ``v1``: HMAC-SHA256 keyed with the base64-decoded part of a ``whsec_...`` secret.
- ``v1a``: ed25519, checked against a ``whpk_...`` public key given as a secret. A ``whsk_``
  private key is refused: a receiver never needs it.

Other versions are ignored (the spec's forward compatibility), and so is every entry after the
first :data:`MAX_SIGNATURE_ENTRIES` (a forged header must not multiply the work). Svix's own
``svix-id``, ``svix-timestamp`` and ``svix-signature`` headers (what Clerk and Resend send) are
read when the ``webhook-*`` set is absent. The timestamp must be within the tolerance in both
directions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.providers import (
    DEFAULT_TOLERANCE,
    MalformedSignature,
    MissingSignature,
    Provider,
    SignatureMismatch,
    any_signature_matches,
    check_timestamp,
    register_provider,
    signing_time,
)
from gateway.webhook import Webhook

SECRET_PREFIX = "whsec_"
PUBLIC_KEY_PREFIX = "whpk_"
PRIVATE_KEY_PREFIX = "whsk_"
#: (id, timestamp, signature) header names, in the order they are looked for
HEADER_SETS = (
    ("webhook-id", "webhook-timestamp", "webhook-signature"),
    ("svix-id", "svix-timestamp", "svix-signature"),
)
MAX_TIMESTAMP_DIGITS = 12  # Unix seconds stay below 10**12 for another 30,000 years
#: ``v1``/``v1a`` entries considered per request: senders send one per active secret, and each
#: ed25519 entry costs a pass over the body per public key
MAX_SIGNATURE_ENTRIES = 10
_ED25519_SIGNATURE_SIZE = 64


def b64decode(text: str) -> bytes:
    """Strict base64 that tolerates missing padding; ``ValueError`` if it is not base64."""
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def signed_content(msg_id: str, timestamp: int | str, body: bytes) -> bytes:
    """The bytes every signature covers: ``{id}.{timestamp}.{body}``.

    The id is encoded as Latin-1, the inverse of how the receiver decodes header bytes, so it is
    signed as the bytes that came on the wire; ``UnicodeEncodeError`` for text that cannot have.
    """
    return msg_id.encode("latin-1") + f".{timestamp}.".encode() + body


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """A ``v1,<base64>`` signature entry for a ``whsec_`` secret."""
    key = b64decode(secret.removeprefix(SECRET_PREFIX))
    mac = hmac.new(key, signed_content(msg_id, timestamp, body), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def _parse_secret(secret: str, position: int) -> bytes | Ed25519PublicKey:
    where = f"standard: secret #{position}"
    if secret.startswith(PRIVATE_KEY_PREFIX):
        raise ValueError(f"{where} is a whsk_ private key; configure the whpk_ public key instead")
    if secret.startswith(PUBLIC_KEY_PREFIX):
        try:
            raw = b64decode(secret.removeprefix(PUBLIC_KEY_PREFIX))
            return Ed25519PublicKey.from_public_bytes(raw)
        except ValueError:
            raise ValueError(f"{where} is not a valid whpk_ ed25519 public key") from None
    try:
        key = b64decode(secret.removeprefix(SECRET_PREFIX))
    except ValueError:
        raise ValueError(f"{where} is not whsec_ followed by base64") from None
    if not key:
        raise ValueError(f"{where} is empty")
    return key


def _headers(headers: Mapping[str, str]) -> tuple[str, str, str]:
    for names in HEADER_SETS:
        values = [headers.get(name) for name in names]
        if all(values):
            msg_id, timestamp, signature = (str(v) for v in values)
            return msg_id, timestamp, signature
    missing = [name for name in HEADER_SETS[0] if not headers.get(name)]
    raise MissingSignature(f"missing header: {', '.join(missing)}")


def parse_signatures(header: str) -> list[tuple[str, bytes]]:
    """``(version, raw signature)`` for the first :data:`MAX_SIGNATURE_ENTRIES` distinct
    ``v1``/``v1a`` entries that decode; later ones are ignored.

    Raises :class:`MalformedSignature` when no entry does.
    """
    found: dict[tuple[str, bytes], None] = {}
    for entry in header.split():
        # A repeated header arrives joined with ", ": the joining comma ends an entry.
        version, sep, encoded = entry.rstrip(",").partition(",")
        if not sep or version not in ("v1", "v1a"):
            continue
        try:
            found[(version, b64decode(encoded))] = None
        except ValueError:
            continue
        if len(found) == MAX_SIGNATURE_ENTRIES:
            break
    if not found:
        raise MalformedSignature("webhook-signature has no v1 or v1a entry in base64")
    return list(found)


@register_provider
class StandardWebhooksProvider(Provider):
    """Any sender following the Standard Webhooks spec (Svix, Clerk, Resend, ...)."""

    name = "standard"
    body_kind = "json"
    verification = (
        "`webhook-signature: v1,<base64>` HMAC-SHA256 or `v1a` ed25519 of `{id}.{ts}.{body}`"
    )
    handshake_summary = "none"
    dedup_summary = "`webhook-id` / `svix-id`"
    signs_timestamp = True
    env_var: ClassVar[str | None] = "STANDARD_WEBHOOKS_SECRET"

    def __init__(
        self,
        secrets: Sequence[str],
        tolerance: int | None = DEFAULT_TOLERANCE,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(secrets, tolerance, options)
        keys = [_parse_secret(s, i) for i, s in enumerate(self.secrets, start=1)]
        self._hmac_keys = [k for k in keys if isinstance(k, bytes)]
        self._public_keys = [k for k in keys if isinstance(k, Ed25519PublicKey)]

    def verify(self, body: bytes, headers: Mapping[str, str], *, now: float | None = None) -> None:
        msg_id, timestamp, header = _headers(headers)
        if not (timestamp.isascii() and timestamp.isdigit()):
            raise MalformedSignature("webhook-timestamp is not an integer")
        if len(timestamp) > MAX_TIMESTAMP_DIGITS:
            raise MalformedSignature("webhook-timestamp is out of range")
        signatures = parse_signatures(header)
        try:
            content = signed_content(msg_id, timestamp, body)
        except UnicodeEncodeError:
            raise MalformedSignature("webhook-id is not a header value") from None
        if not self._matches(content, signatures):
            raise SignatureMismatch("no webhook-signature entry matches any configured key")
        check_timestamp(int(timestamp), self.tolerance, now)

    def _matches(self, content: bytes, signatures: list[tuple[str, bytes]]) -> bool:
        symmetric = [sig for version, sig in signatures if version == "v1"]
        expected = [hmac.new(key, content, hashlib.sha256).digest() for key in self._hmac_keys]
        matched = any_signature_matches(expected, symmetric)
        for version, sig in signatures:
            if version != "v1a" or len(sig) != _ED25519_SIGNATURE_SIZE:
                continue
            for public_key in self._public_keys:
                try:
                    public_key.verify(sig, content)
                except InvalidSignature:
                    continue
                matched = True
        return matched

    def sign(
        self,
        body: bytes,
        *,
        timestamp: int | None = None,
        method: str = "POST",
        url: str | None = None,
    ) -> dict[str, str]:
        """``webhook-id`` (a fresh ``msg_...``), ``webhook-timestamp`` and a ``v1`` signature.

        ``NotImplementedError`` when the first secret is a ``whpk_`` public key: only the sender
        holds the private key.
        """
        secret = self.secrets[0]
        if secret.startswith(PUBLIC_KEY_PREFIX):
            raise NotImplementedError(
                "standard: the first secret is a whpk_ public key; only the sender can sign"
            )
        msg_id = f"msg_{uuid.uuid4().hex}"
        ts = signing_time(timestamp)
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": sign(secret, msg_id, ts, body),
            "content-type": "application/json",
        }

    @classmethod
    def secret_problem(cls, secret: str) -> str | None:
        """``whsec_`` + base64 or a ``whpk_`` ed25519 public key; never a ``whsk_`` private key."""
        try:
            _parse_secret(secret, 1)
        except ValueError as exc:
            return str(exc).removeprefix("standard: secret #1 ")
        return None

    def delivery_id(self, webhook: Webhook) -> str | None:
        """``webhook-id`` (or ``svix-id``): the message id, kept on every retry."""
        for id_header, _, _ in HEADER_SETS:
            value = webhook.header(id_header)
            if value:
                return value
        return None
