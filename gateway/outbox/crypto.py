"""Optional encryption at rest for stored webhooks and events: AES-256-GCM with key rotation.

A key is 32 random bytes in URL-safe base64; generate one with::

    python -c "import os,base64;print(base64.urlsafe_b64encode(os.urandom(32)).decode())"

Several comma-separated keys may be configured: the first encrypts, every one decrypts. Rotate
by putting the new key first and keeping the old one until no readable row uses it (the outbox
refuses to open while one does; see ``docs/outbox.md``).

Blob layout: ``version (1) | key id (4) | nonce (12) | ciphertext and tag``, where the key id is
the first 4 bytes of the key's SHA-256. The associated data names what the blob holds (the
row kind and column, e.g. ``event.payload``), so a blob moved to another column fails to open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = 1
KEY_BYTES = 32
_HEADER = 1 + 4 + 12


class CipherError(Exception):
    """A key is invalid, or a stored blob cannot be decrypted with the configured keys."""


def generate_key() -> str:
    """A new random key, URL-safe base64 encoded."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode()


def key_id(key: bytes) -> bytes:
    """The 4-byte id stored in front of every blob the key encrypts."""
    return hashlib.sha256(key).digest()[:4]


def blob_key_id(blob: bytes) -> bytes | None:
    """The id of the key that encrypted ``blob``, or None when it is not an encrypted blob."""
    if len(blob) < _HEADER + 16 or blob[0] != VERSION:
        return None
    return blob[1:5]


def _decode_key(text: str, position: int) -> bytes:
    stripped = text.strip()
    try:
        raw = base64.b64decode(stripped + "=" * (-len(stripped) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise CipherError(f"encryption key #{position} is not URL-safe base64") from None
    if len(raw) != KEY_BYTES:
        raise CipherError(
            f"encryption key #{position} must decode to {KEY_BYTES} bytes, not {len(raw)}"
        )
    return raw


class Cipher:
    """Encrypts with the first key, decrypts with whichever configured key wrote the blob."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise CipherError("encryption needs at least one key")
        self._keys: dict[bytes, AESGCM] = {}
        for position, text in enumerate(keys, start=1):
            raw = _decode_key(text, position)
            self._keys.setdefault(key_id(raw), AESGCM(raw))
        self.current_key_id = next(iter(self._keys))

    @property
    def key_ids(self) -> frozenset[bytes]:
        """Ids of every configured key."""
        return frozenset(self._keys)

    def encrypt(self, data: bytes, kind: str) -> bytes:
        """Seal ``data`` with the first key; ``kind`` must be given again to decrypt."""
        nonce = os.urandom(12)
        sealed = self._keys[self.current_key_id].encrypt(nonce, data, kind.encode())
        return bytes([VERSION]) + self.current_key_id + nonce + sealed

    def decrypt(self, blob: bytes, kind: str) -> bytes:
        """Open a blob made by :meth:`encrypt` with the same ``kind``."""
        kid = blob_key_id(blob)
        if kid is None:
            raise CipherError(f"stored {kind} is not an encrypted blob")
        aead = self._keys.get(kid)
        if aead is None:
            raise CipherError(
                f"stored {kind} was encrypted with key id {kid.hex()}, which is not configured"
                f" (configured: {', '.join(sorted(k.hex() for k in self._keys))})"
            )
        try:
            return aead.decrypt(blob[5:_HEADER], blob[_HEADER:], kind.encode())
        except InvalidTag:
            raise CipherError(
                f"stored {kind} failed authentication (tampered with, or not a {kind})"
            ) from None
