"""Signature building blocks shared by the generic ``hmac`` source and the named providers.

Each function does one step of a scheme: decode a key, split a packed header, read a
timestamp, compare a token or Basic credentials in constant time, load a public key, check an
HMAC or a public-key signature. Named providers combine them (usually through
:class:`gateway.providers.generic_hmac.HmacScheme` options) instead of re-implementing them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.providers import MalformedSignature, any_signature_matches

ALGORITHMS: dict[str, Callable[[], Any]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}
KEY_ENCODINGS = ("text", "hex", "base64")
TIMESTAMP_FORMATS = ("unix", "ms", "iso")
MAX_TIMESTAMP_CHARS = 40  # an ISO-8601 time with nanoseconds and an offset is shorter
PublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey


def b64decode(text: str) -> bytes:
    """Strict base64 (standard or URL-safe) that tolerates missing padding; ``ValueError`` else."""
    padded = text + "=" * (-len(text) % 4)
    if "-" in text or "_" in text:
        return base64.urlsafe_b64decode(padded.encode("ascii"))
    return base64.b64decode(padded, validate=True)


def decode_key(secret: str, encoding: str = "text", strip: str = "") -> bytes:
    """The HMAC key in ``secret``: ``strip`` removed, then decoded as text, hex or base64.

    ``ValueError`` when it does not decode or is empty.
    """
    text = secret.removeprefix(strip) if strip else secret
    try:
        if encoding == "hex":
            key = bytes.fromhex(text)
        elif encoding == "base64":
            key = b64decode(text)
        else:
            key = text.encode()
    except (ValueError, binascii.Error):
        raise ValueError(f"the key is not {encoding}") from None
    if not key:
        raise ValueError("the key is empty")
    return key


def decode_signature(text: str, encoding: str) -> bytes | None:
    """A signature's bytes from hex or base64 text; ``None`` when it does not decode."""
    try:
        return bytes.fromhex(text) if encoding == "hex" else b64decode(text)
    except (ValueError, binascii.Error):
        return None


def parse_packed(
    value: str, pair_separator: str = ",", kv_separator: str = "="
) -> dict[str, list[str]]:
    """Split a packed header (``t=1,v1=ab,v1=cd`` or ``ts=1;h1=ab``) into key -> values.

    Items without ``kv_separator`` are ignored; keys keep their order of appearance per key.
    """
    found: dict[str, list[str]] = {}
    for item in value.split(pair_separator):
        key, sep, text = item.strip().partition(kv_separator)
        if sep:
            found.setdefault(key.strip(), []).append(text.strip())
    return found


def parse_timestamp(text: str, fmt: str, what: str) -> float:
    """Unix seconds from a timestamp in ``unix`` seconds, ``ms`` or ``iso`` (ISO-8601 with offset).

    :class:`MalformedSignature` naming ``what`` when it is not one.
    """
    if len(text) > MAX_TIMESTAMP_CHARS:
        raise MalformedSignature(f"{what} is out of range")
    if fmt == "iso":
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise MalformedSignature(f"{what} is not an ISO-8601 time") from None
        if moment.tzinfo is None:
            raise MalformedSignature(f"{what} has no time zone")
        return moment.timestamp()
    if not (text.isascii() and text.isdigit()) or len(text) > 15:
        raise MalformedSignature(f"{what} is not an integer")
    return int(text) / 1000 if fmt == "ms" else float(int(text))


def hmac_digests(keys: Sequence[bytes], algorithm: str, content: bytes) -> list[bytes]:
    """The HMAC of ``content`` under each key."""
    digest = ALGORITHMS[algorithm]
    return [hmac.new(key, content, digest).digest() for key in keys]


def token_matches(secrets: Sequence[str], received: str) -> bool:
    """Constant-time check that ``received`` equals one of ``secrets`` (a static token)."""
    try:
        got = received.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return any_signature_matches([s.encode() for s in secrets], [got])


def basic_auth_matches(secrets: Sequence[str], header: str) -> bool:
    """Constant-time check of ``Authorization: Basic <base64(user:password)>`` against secrets.

    Each secret is ``user:password``. :class:`MalformedSignature` when the header is not Basic.
    """
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise MalformedSignature("Authorization is not Basic credentials")
    try:
        credentials = base64.b64decode(encoded.strip(), validate=True)
    except (ValueError, binascii.Error):
        raise MalformedSignature("Authorization Basic credentials are not base64") from None
    return any_signature_matches([s.encode() for s in secrets], [credentials])


def load_public_key(secret: str, kind: str, strip: str = "") -> PublicKey:
    """An ``ed25519`` or ``ecdsa`` (P-256) public key from PEM, base64 DER, or raw hex/base64.

    A raw ed25519 key is 32 bytes (Discord gives it as hex). ``ValueError`` naming the problem.
    """
    text = (secret.removeprefix(strip) if strip else secret).strip()
    key: object
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            raw = decode_signature(text, "hex") if len(text) == 64 else None
            if raw is None:
                raw = b64decode(text)
            if kind == "ed25519" and len(raw) == 32:
                key = Ed25519PublicKey.from_public_bytes(raw)
            else:
                key = serialization.load_der_public_key(raw)
    except (ValueError, binascii.Error, TypeError):
        raise ValueError(f"not an {kind} public key (PEM, base64 DER or raw)") from None
    if kind == "ed25519" and not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an ed25519 public key")
    if kind == "ecdsa" and (
        not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1"
    ):
        raise ValueError("not an ECDSA P-256 public key")
    assert isinstance(key, Ed25519PublicKey | ec.EllipticCurvePublicKey)
    return key


def public_signature_matches(
    keys: Sequence[PublicKey], signatures: Sequence[bytes], content: bytes
) -> bool:
    """Whether any signature verifies ``content`` under any key (ECDSA signatures are DER)."""
    for key in keys:
        for signature in signatures:
            try:
                if isinstance(key, Ed25519PublicKey):
                    if len(signature) != 64:
                        continue
                    key.verify(signature, content)
                else:
                    key.verify(signature, content, ec.ECDSA(hashes.SHA256()))
            except InvalidSignature:
                continue
            return True
    return False
