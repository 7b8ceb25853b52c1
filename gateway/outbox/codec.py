"""How stored rows hold webhooks, events and rejections: the same for every backend.

Blobs (bodies, headers, query strings, payloads) are compressed with zlib when large enough,
then encrypted when a key is set (:mod:`gateway.outbox.crypto`). Each row's ``sealed`` column
holds flags saying which of the two was done, so rows written under other settings stay
readable. Nothing here touches a database: a backend passes column values in and out.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from gateway.outbox import Rejection
from gateway.outbox.crypto import Cipher, CipherError
from gateway.webhook import Webhook

# the ``sealed`` column holds flags: how the row's blobs are stored (0: as received)
ENCRYPTED = 1
COMPRESSED = 2  # zlib, before encryption
ZLIB_LEVEL = 1  # webhook JSON shrinks 3x (2 KB) to 14x (20 KB)
# Smaller blobs are stored as they are: each zlib call releases the GIL, and on a busy core the
# hand-over to the writer thread and back cost more than the saved bytes (bench/README.md).
COMPRESS_MIN_BYTES = 4096

#: the ``webhooks`` columns :meth:`RowCodec.webhook_row` gives values for, in order
WEBHOOK_INSERT_COLUMNS = (
    "source, provider, received_at, headers, query, body, sealed, status, error, detail"
)
#: the ``webhooks`` columns :meth:`RowCodec.webhook_from_row` reads, in order
WEBHOOK_COLUMNS = "id, source, provider, received_at, headers, query, body, sealed"
#: the ``rejections`` columns :meth:`RowCodec.rejection_row` gives values for, in order
REJECTION_INSERT_COLUMNS = (
    "source, provider, received_at, status, reason, message, headers, body, body_size,"
    " request_id, sealed"
)
#: the ``rejections`` columns :meth:`RowCodec.rejection_from_row` reads, in order
REJECTION_COLUMNS = f"id, {REJECTION_INSERT_COLUMNS}"


class RowCodec:
    """Seals blobs for storage and opens them again; builds and reads whole rows.

    ``cipher`` encrypts at rest (None: stored in the clear); ``compress`` turns zlib on for
    blobs of at least :data:`COMPRESS_MIN_BYTES`.
    """

    __slots__ = ("cipher", "compress")

    def __init__(self, cipher: Cipher | None = None, compress: bool = True) -> None:
        self.cipher = cipher
        self.compress = compress

    def seal(self, data: bytes, kind: str, compress: bool) -> bytes:
        """``data`` as stored: compressed if ``compress``, then encrypted if a key is set.

        ``kind`` (``"event.payload"``, ``"webhook.body"`` ...) binds the blob to its column.
        """
        if compress:
            data = zlib.compress(data, ZLIB_LEVEL)
        return self.cipher.encrypt(data, kind) if self.cipher else data

    def worth_compressing(self, data: bytes) -> bool:
        return self.compress and len(data) >= COMPRESS_MIN_BYTES

    def flags(self, compressed: bool) -> int:
        """The ``sealed`` column's value for a row written now."""
        return (ENCRYPTED if self.cipher is not None else 0) | (COMPRESSED if compressed else 0)

    def seal_payload(self, payload: bytes) -> tuple[bytes, int]:
        """An event payload as stored, with its row's flags."""
        compress = self.worth_compressing(payload)
        return self.seal(payload, "event.payload", compress), self.flags(compress)

    def unseal(self, blob: bytes, sealed: int, kind: str) -> bytes:
        """The stored ``blob`` back as written; ``sealed`` holds the row's flags."""
        if sealed & ENCRYPTED:
            if self.cipher is None:
                raise CipherError(f"stored {kind} is encrypted and no outbox.encryption_key is set")
            blob = self.cipher.decrypt(bytes(blob), kind)
        if sealed & COMPRESSED:
            blob = zlib.decompress(blob)
        return bytes(blob)

    def webhook_row(
        self,
        webhook: Webhook,
        status: str,
        error: str | None = None,
        detail: str | None = None,
    ) -> tuple[Any, ...]:
        """Values for :data:`WEBHOOK_INSERT_COLUMNS`."""
        compress = self.worth_compressing(webhook.body)  # headers and query go with it
        return (
            webhook.source,
            webhook.provider,
            webhook.received_at,
            self.seal(encode_json(webhook.headers), "webhook.headers", compress),
            self.seal(encode_json(webhook.query), "webhook.query", compress),
            self.seal(webhook.body, "webhook.body", compress),
            self.flags(compress),
            status,
            error,
            detail,
        )

    def webhook_from_row(self, row: Sequence[Any]) -> Webhook:
        """A webhook from a row starting with :data:`WEBHOOK_COLUMNS`."""
        _, source, provider, received_at, headers, query, body, sealed = row[:8]
        return Webhook(
            source=source,
            provider=provider,
            body=self.unseal(body, sealed, "webhook.body"),
            headers=orjson.loads(self.unseal(headers, sealed, "webhook.headers")),
            query=orjson.loads(self.unseal(query, sealed, "webhook.query")),
            received_at=received_at,
        )

    def rejection_row(self, r: Rejection) -> tuple[Any, ...]:
        """Values for :data:`REJECTION_INSERT_COLUMNS` (never compressed: bodies are cut)."""
        return (
            r.source,
            r.provider,
            r.received_at,
            r.status,
            r.reason,
            r.message,
            self.seal(encode_json(r.headers), "rejection.headers", False),
            self.seal(r.body, "rejection.body", False),
            r.body_size,
            r.request_id,
            int(self.cipher is not None),
        )

    def rejection_from_row(self, row: Sequence[Any]) -> Rejection:
        """A rejection from a row of :data:`REJECTION_COLUMNS`; unreadable content is noted."""
        rid, source, provider, at, status, reason, message, headers, body, size, req, sealed = row
        try:
            headers = orjson.loads(self.unseal(headers, sealed, "rejection.headers"))
            body = self.unseal(body, sealed, "rejection.body")
        except CipherError as exc:  # a rotated-out key: the row's facts are still worth showing
            headers, body, message = {}, b"", f"{message} [content unreadable: {exc}]"
        return Rejection(
            id=rid,
            source=source,
            provider=provider,
            received_at=at,
            status=status,
            reason=reason,
            message=message,
            headers=headers,
            body=body,
            body_size=size,
            request_id=req,
        )


def encode_json(mapping: Mapping[str, Any]) -> bytes:
    """Headers or a query string as stored (before sealing)."""
    return orjson.dumps(dict(mapping))
