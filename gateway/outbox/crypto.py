"""Optional encryption at rest for stored payloads: AES-256-GCM with key rotation.

Keys are 32 random bytes in URL-safe base64; generate one with::

    python -c "import os,base64;print(base64.urlsafe_b64encode(os.urandom(32)).decode())"

Several comma-separated keys may be configured: the first encrypts, every one decrypts. Rotate by
putting the new key first, keeping the old one until ``webhook-gateway outbox purge`` (or the
retention period) has removed every row written with it.

Blob layout: ``version (1) | key id (4, SHA-256 of the key) | nonce (12) | ciphertext+tag``.
The associated data names the column, so a blob cannot be moved to another column unnoticed.
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


class CipherError(Exception):
    """A key is invalid, or a blob cannot be decrypted with any configured key."""


def _key_id(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()[:4]


class Cipher:
    """Encrypts with the first key, decrypts with whichever key wrote the blob."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise CipherError("encryption needs at least one key")
        self._keys: dict[bytes, AESGCM] = {}
        self._current = b""
        for i, text in enumerate(keys):
            try:
                padded = text.strip() + "=" * (-len(text.strip()) % 4)
                raw = base64.b64decode(padded, altchars=b"-_", validate=True)
            except (binascii.Error, ValueError):
                raise CipherError(f"encryption key #{i + 1} is not URL-safe base64") from None
            if len(raw) != 32:
                raise CipherError(f"encryption key #{i + 1} must decode to 32 bytes")
            kid = _key_id(raw)
            self._keys[kid] = AESGCM(raw)
            if i == 0:
                self._current = kid

    def encrypt(self, data: bytes, column: str) -> bytes:
        nonce = os.urandom(12)
        sealed = self._keys[self._current].encrypt(nonce, data, column.encode())
        return bytes([VERSION]) + self._current + nonce + sealed

    def decrypt(self, blob: bytes, column: str) -> bytes:
        if len(blob) < 17 or blob[0] != VERSION:
            raise CipherError("stored value is not an encrypted blob (was encryption turned on?)")
        aead = self._keys.get(blob[1:5])
        if aead is None:
            raise CipherError("stored value was encrypted with a key that is not configured")
        try:
            return aead.decrypt(blob[5:17], blob[17:], column.encode())
        except InvalidTag:
            raise CipherError(
                "stored value failed authentication (tampered or wrong column)"
            ) from None
