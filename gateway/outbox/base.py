"""What every outbox backend does the same way around its group-commit writer.

The receive path's writes (accept, quarantine, resolve) go through the writer, sealed in the
caller's thread; claims hand out a fresh lease token each; refused requests ride along with the
next commit. A backend supplies its SQL: :meth:`WriterOutbox._accept_many`,
:meth:`WriterOutbox._store_events`, :meth:`WriterOutbox._claim_events`, ``close``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from gateway.outbox import AcceptResult, OutboxUnavailable, Rejection, StoredEvent, common
from gateway.outbox.codec import WEBHOOK_INSERT_COLUMNS, RowCodec
from gateway.outbox.common import AcceptCall, EventBatch, Leases, RejectionBuffer
from gateway.outbox.crypto import Cipher, CipherError
from gateway.outbox.reads import Dialect
from gateway.outbox.writer import GroupCommitWriter
from gateway.webhook import Webhook

C = TypeVar("C")
T = TypeVar("T")

_WEBHOOK_NAMES = WEBHOOK_INSERT_COLUMNS.split(", ")
_INSERT_WEBHOOK = (
    f"INSERT INTO webhooks ({WEBHOOK_INSERT_COLUMNS})"
    f" VALUES ({', '.join(':' + name for name in _WEBHOOK_NAMES)}) RETURNING id"
)
_RESOLVE = "UPDATE webhooks SET status = 'resolved' WHERE id = :id AND status = 'quarantined'"
# rows that may still be read (not delivered; quarantined) sealed with key ``:kid``
_NEEDING_KEY = (
    "SELECT (SELECT COUNT(*) FROM events e JOIN event_payloads p ON p.seq = e.seq"
    " WHERE (e.sealed & 1) = 1 AND e.state <> 'delivered'"
    " AND substr(p.payload, 2, 4) = :kid) + (SELECT COUNT(*) FROM webhooks"
    " WHERE (sealed & 1) = 1 AND status = 'quarantined' AND substr(body, 2, 4) = :kid)"
)


def check_keys(conn: Any, cipher: Cipher | None, now: float, dialect: Dialect) -> None:
    """Refuse to open while rows that may still be read need a key that is not configured.

    Run at open, in a transaction on ``conn``; keys no row needs any more are forgotten and the
    current key is recorded.
    """
    configured = cipher.key_ids if cipher else frozenset()
    recorded = [bytes(r[0]) for r in conn.execute("SELECT key_id FROM encryption_keys")]
    for kid in recorded:
        if kid in configured:
            continue
        needed = conn.execute(dialect.sql(_NEEDING_KEY), {"kid": kid}).fetchone()[0]
        if needed:
            if cipher is None:
                hint = "set outbox.encryption_key to the key that wrote them"
            else:
                hint = "list that key after the new one in outbox.encryption_key"
            raise CipherError(
                f"{needed} stored row(s) that are not delivered yet are encrypted with key"
                f" id {kid.hex()}, which is not configured: {hint}"
            )
        conn.execute(dialect.sql("DELETE FROM encryption_keys WHERE key_id = :kid"), {"kid": kid})
    if cipher is not None:
        conn.execute(
            dialect.sql(
                "INSERT INTO encryption_keys (key_id, first_used) VALUES (:kid, :now)"
                " ON CONFLICT DO NOTHING"
            ),
            {"kid": cipher.current_key_id, "now": now},
        )


class WriterOutbox(Generic[C]):
    """The backend-neutral half of an outbox whose writes go through one writer (a mixin)."""

    codec: RowCodec
    clock: Callable[[], float]
    dialect: Dialect
    _writer: GroupCommitWriter[C]
    _rejected: RejectionBuffer
    _leases: Leases
    health: common.WriteHealth

    # -- the backend's part -------------------------------------------------------------

    def _accept_many(self, conn: C, calls: Sequence[AcceptCall]) -> list[AcceptResult]:
        """Store the webhooks of ``calls`` and their events: a few statements for all."""
        raise NotImplementedError

    def _store_events(
        self, conn: C, batches: Sequence[EventBatch], body_keys: Sequence[str | None] = ()
    ) -> list[tuple[int, int]]:
        """Insert each webhook's events after the dedup rule (``body_keys`` parallel to
        ``batches``; see :func:`gateway.outbox.common.plan_events`); ``(stored, duplicates)``
        each."""
        raise NotImplementedError

    def _store_accepted(
        self, conn: C, ids: Sequence[int], calls: Sequence[AcceptCall]
    ) -> list[AcceptResult]:
        """The events of ``calls``, whose webhooks the backend stored as ``ids``."""
        counts = self._store_events(
            conn,
            [
                (webhook_id, call.payloads, call.sizes, call.event_ids, call.names)
                for webhook_id, call in zip(ids, calls, strict=True)
            ],
            [call.body_key for call in calls],
        )
        return [AcceptResult(wid, *count) for wid, count in zip(ids, counts, strict=True)]

    def _claim_events(
        self, at: float, max_events: int, max_bytes: int, lease_seconds: float, token: str
    ) -> list[tuple[Any, ...]]:
        """Lease a batch under ``token``: rows of ``(seq, webhook_id, event_id, name,
        stored payload, sealed, attempts, created_at)`` in seq order."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------

    @property
    def cipher(self) -> Cipher | None:
        return self.codec.cipher

    @property
    def compress(self) -> bool:
        return self.codec.compress

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def observe_commits(self, callback: Callable[[float], None]) -> None:
        """Call ``callback(seconds)`` after each commit, from the writer thread."""
        self._writer.on_commit = callback

    @property
    def commit_count(self) -> int:
        """Transactions this instance's writer committed."""
        return self._writer.commit_count

    @property
    def job_count(self) -> int:
        """Jobs (accepts, quarantines ...) those transactions carried."""
        return self._writer.job_count

    def accept(
        self,
        webhook: Webhook,
        events: Sequence[bytes],
        event_ids: Sequence[str | None],
        names: Sequence[str],
        *,
        body_key: str | None = None,
    ) -> AcceptResult:
        """Store a webhook and its events in one transaction; see :class:`Outbox`.

        On a full volume the oldest refused requests and delivered events give way (see
        :meth:`make_room`) and the webhook is tried once more before it is refused.
        """
        job = self._accept_job(webhook, events, event_ids, names, body_key)
        result: AcceptResult
        try:
            result = self._call(job)
        except OutboxUnavailable as exc:
            if not (common.is_full(exc) and self._room_made(exc, job)):
                raise
            result = self._stored_again(job)
        self.health.recovered()
        return result

    async def accept_async(
        self,
        webhook: Webhook,
        events: Sequence[bytes],
        event_ids: Sequence[str | None],
        names: Sequence[str],
        *,
        body_key: str | None = None,
    ) -> AcceptResult:
        """:meth:`accept` without blocking the loop; concurrent calls share one commit."""
        job = self._accept_job(webhook, events, event_ids, names, body_key)
        result: AcceptResult
        try:
            result = await self._writer.submit_async(job)
        except OutboxUnavailable as exc:
            if not (common.is_full(exc) and await asyncio.to_thread(self._room_made, exc, job)):
                raise
            result = await asyncio.to_thread(self._stored_again, job)
        self.health.recovered()
        return result

    def make_room(self) -> int:
        """Delete what may give way on a full volume; rows deleted (none by default)."""
        return 0

    def _room_made(self, exc: OutboxUnavailable, job: AcceptCall) -> bool:
        """After ``job`` failed for lack of space: make room; False (and the failure
        remembered for readiness) when nothing could give way."""
        try:
            if self.make_room():
                return True
        except OutboxUnavailable:
            pass
        self.health.failed(str(exc), job.stored_bytes)
        return False

    def _stored_again(self, job: AcceptCall) -> AcceptResult:
        try:
            result: AcceptResult = self._call(job)
            return result
        except OutboxUnavailable as exc:
            self.health.failed(str(exc), job.stored_bytes)
            raise

    def quarantine(self, webhook: Webhook, error: str, detail: str) -> int:
        """Keep a webhook whose transform failed; returns its webhook id."""
        return self._call(self._quarantine_job(webhook, error, detail))

    async def quarantine_async(self, webhook: Webhook, error: str, detail: str) -> int:
        """:meth:`quarantine` without blocking the loop."""
        return await self._writer.submit_async(self._quarantine_job(webhook, error, detail))

    def resolve_quarantined(
        self,
        webhook_id: int,
        events: Sequence[bytes],
        event_ids: Sequence[str | None],
        names: Sequence[str],
    ) -> AcceptResult:
        """Store a re-run transform's events; raises ``KeyError`` if not quarantined."""
        payloads, ids, labels = common.checked(events, event_ids, names)
        sealed = [self.codec.seal_payload(payload) for payload in payloads]
        sql = self.dialect.sql(_RESOLVE)

        def job(conn: Any) -> AcceptResult:
            if not conn.execute(sql, {"id": webhook_id}).rowcount:
                raise KeyError(f"webhook {webhook_id} is not quarantined")
            batch = (webhook_id, sealed, [len(p) for p in payloads], ids, labels)
            return AcceptResult(webhook_id, *self._store_events(conn, [batch])[0])

        return self._call(job)

    def claim(
        self, *, max_events: int, max_bytes: int, lease_seconds: float, now: float | None = None
    ) -> list[StoredEvent]:
        """Lease due events in ``seq`` order (expired leases count as due); see :class:`Outbox`."""
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        at = self.clock() if now is None else now
        token = Leases.new_token()
        rows = self._claim_events(at, max_events, max_bytes, lease_seconds, token)
        self._leases.hold([row[0] for row in rows], token)
        return [
            StoredEvent(
                seq=seq,
                webhook_id=webhook_id,
                event_id=event_id,
                name=name,
                payload=self.codec.unseal(payload, sealed, "event.payload"),
                attempts=attempts,
                created_at=created_at,
            )
            for seq, webhook_id, event_id, name, payload, sealed, attempts, created_at in rows
        ]

    def record_rejection(self, rejection: Rejection) -> None:
        """Buffer a refused request; it rides along with the next transaction's commit."""
        self._rejected.record(rejection)

    def flush_rejections(self) -> None:
        """Commit buffered rejections now (a no-op when nothing was recorded since the last).

        The writer runs one group at a time, so once this no-op job's group has committed, so
        has any group that took rejections from the buffer before it.
        """
        target = self._rejected.recorded
        if target > self._rejected.flushed:
            self._call(lambda conn: None)
            self._rejected.flushed = max(self._rejected.flushed, target)

    def _accept_job(
        self,
        webhook: Webhook,
        events: Sequence[bytes],
        event_ids: Sequence[str | None],
        names: Sequence[str],
        body_key: str | None = None,
    ) -> AcceptCall:
        payloads, ids, labels = common.checked(events, event_ids, names)
        # sealing and serialising happen in the caller's thread, not the writer's
        return AcceptCall(
            self._accept_many,
            self.codec.webhook_row(webhook, "accepted"),
            [self.codec.seal_payload(payload) for payload in payloads],
            [len(payload) for payload in payloads],
            ids,
            labels,
            body_key,
        )

    def _quarantine_job(self, webhook: Webhook, error: str, detail: str) -> Callable[[C], int]:
        values = dict(
            zip(
                _WEBHOOK_NAMES,
                self.codec.webhook_row(webhook, "quarantined", error, detail),
                strict=True,
            )
        )
        sql = self.dialect.sql(_INSERT_WEBHOOK)
        return lambda conn: int(conn.execute(sql, values).fetchone()[0])  # type: ignore[attr-defined]

    def _call(self, fn: Callable[[C], T]) -> T:
        return self._writer.submit(fn).result()
