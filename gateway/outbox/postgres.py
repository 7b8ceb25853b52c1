"""The shared outbox on PostgreSQL: any number of stateless replicas on one database.

Writes that answer a webhook (accept, quarantine, resolve) go through one group-commit thread
per replica that owns one session: it takes every job queued and runs them in one transaction
with multi-row inserts and no savepoints (see :class:`gateway.outbox.writer.Transactions`),
``synchronous_commit`` on for ``durability = "power_loss"``. Event ids are deduplicated across
replicas by the ``dedup`` table's key (``INSERT ... ON CONFLICT``: a second replica waits for
the first one's commit, then sees the id). Every commit that stored events sends one
``NOTIFY``; each replica LISTENs on its own session and wakes its forwarder.

Claims, acks and reads run on a small connection pool. A claim locks due rows with
``FOR UPDATE SKIP LOCKED`` (replicas get disjoint batches) and keeps one webhook's events in
order across replicas: a row is left out while an earlier event of its webhook is pending,
leased or locked and not in this claim (see ``_CLAIM``). Each claim leases under a fresh token
that the instance remembers; ``ack``, ``release``, ``unlease``, ``dead_letter`` and ``renew``
change only rows still leased under it, so a replica whose lease ran out and was taken over
changes nothing. Every database error is :class:`OutboxUnavailable` (503, the sender retries).

Needs the ``postgres`` extra: ``pip install 'webhook-gateway[postgres]'``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeVar

import psycopg
from psycopg_pool import ConnectionPool

from gateway.config import OutboxConfig, resolve_secret
from gateway.outbox import (
    AcceptResult,
    Answer,
    OutboxUnavailable,
    common,
)
from gateway.outbox.base import WriterOutbox, check_keys
from gateway.outbox.codec import REJECTION_INSERT_COLUMNS, WEBHOOK_INSERT_COLUMNS, RowCodec
from gateway.outbox.common import (
    MAX_RETRY_HISTORY,
    PRUNE_CHUNK,
    REJECTION_PRUNE_CHUNK,
    AcceptCall,
    EventBatch,
    History,
    Leases,
    RejectionBuffer,
)
from gateway.outbox.crypto import Cipher, CipherError
from gateway.outbox.migrate import check_schema, check_server, migrate
from gateway.outbox.postgres_conn import (
    Listener,
    PgTransactions,
    Session,
    connection_options,
    database_url,
)
from gateway.outbox.postgres_read import POSTGRES
from gateway.outbox.reads import OutboxReads
from gateway.outbox.writer import GroupCommitWriter, unavailable

T = TypeVar("T")
Durability = Literal["power_loss", "process_crash"]

_SYNCHRONOUS_COMMIT = {"power_loss": "on", "process_crash": "off"}
#: ``pg_try_advisory_xact_lock`` key: one replica prunes at a time ("wgprune!")
_PRUNE_LOCK = int.from_bytes(b"wgprune!", "big") - (1 << 63)

_IDLE = """
SELECT (SELECT MIN(next_attempt_at) FROM events WHERE state = 'pending'),
       (SELECT MAX(next_attempt_at) FROM events WHERE state = 'pending'),
       (SELECT MIN(lease_until) FROM events WHERE state = 'leased')
"""
# Lock the first due rows that no other claim holds, then leave out every row with an earlier
# event of its webhook that is pending or leased and not among this claim's own rows: one
# waiting for its retry, leased by another replica, or locked by a claim not yet committed
# (SQLite's write lock serialises claims; here a plain port of its query would hand a second
# replica the webhook's next event while the first one's claim is still open).
_CLAIM = """
WITH due AS MATERIALIZED (
    SELECT seq, webhook_id, size FROM events
    WHERE state = 'pending' AND next_attempt_at <= %(at)s
    ORDER BY seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), expired AS MATERIALIZED (
    SELECT seq, webhook_id, size FROM events
    WHERE state = 'leased' AND lease_until < %(at)s
    ORDER BY seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), mine AS (SELECT * FROM due UNION ALL SELECT * FROM expired)
SELECT c.seq, c.webhook_id, c.size FROM mine c
WHERE NOT EXISTS (
    SELECT 1 FROM events p
    WHERE p.webhook_id = c.webhook_id AND p.seq < c.seq AND p.state IN ('pending', 'leased')
    AND p.seq NOT IN (SELECT seq FROM mine))
ORDER BY c.seq LIMIT %(limit)s
"""
_LEASE = """
WITH leased AS (
    UPDATE events SET state = 'leased', lease_until = %s, lease_token = %s
    WHERE seq = ANY(%s)
    RETURNING seq, webhook_id, event_id, name, sealed, attempts, created_at)
SELECT l.seq, l.webhook_id, l.event_id, l.name, p.payload, l.sealed, l.attempts, l.created_at
FROM leased l JOIN event_payloads p ON p.seq = l.seq ORDER BY l.seq
"""
# rows this instance still holds: (seq, token) pairs from what it claimed
_HELD = "FROM unnest(%s::bigint[], %s::text[]) AS h(seq, token) WHERE events.seq = h.seq" \
    " AND events.lease_token = h.token AND events.state = 'leased'"  # fmt: skip
# An id is a duplicate while its entry is inside the window and its event is not dead; the
# ORDER BY takes the key locks in one order in every replica (no deadlock between two groups).
_DEDUP = """
INSERT INTO dedup AS d (event_id, first_seen, seq)
SELECT * FROM unnest(%s::text[], %s::float8[], %s::bigint[]) ORDER BY 1
ON CONFLICT (event_id) DO UPDATE SET first_seen = excluded.first_seen, seq = excluded.seq
WHERE d.first_seen <= %s OR EXISTS (SELECT 1 FROM events e WHERE e.seq = d.seq AND e.state = 'dead')
RETURNING event_id
"""
# accept's duplicate rule, read-only (held_event_ids)
_SEEN = """
SELECT d.event_id FROM dedup d LEFT JOIN events e ON e.seq = d.seq
WHERE d.event_id = ANY(%(ids)s) AND d.first_seen > %(after)s AND e.state IS DISTINCT FROM 'dead'
"""
# dead events with, for each, whether a live (or pruned) copy of its id holds the dedup entry
_DEAD_HELD = """
SELECT e.seq, e.event_id, EXISTS (
    SELECT 1 FROM dedup d LEFT JOIN events o ON o.seq = d.seq
    WHERE d.event_id = e.event_id AND d.seq <> e.seq AND o.state IS DISTINCT FROM 'dead')
FROM events e WHERE e.state = 'dead' AND (%(seqs)s::bigint[] IS NULL OR e.seq = ANY(%(seqs)s))
ORDER BY e.seq
"""
_TAKE_LEASE = """
INSERT INTO job_leases (name, holder, until) VALUES (%(name)s, %(holder)s, %(until)s)
ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until
WHERE job_leases.holder = EXCLUDED.holder OR job_leases.until <= %(at)s
RETURNING holder
"""
# a webhook (alias w) left without events
_NO_EVENTS = " AND NOT EXISTS (SELECT 1 FROM events e WHERE e.webhook_id = w.id)"
_WEBHOOK_TYPES = "bigint, text, text, float8, bytea, bytea, bytea, smallint, text, text, text"
_EVENT_COLUMNS = common.EVENT_COLUMNS
_EVENT_TYPES = "bigint, bigint, text, text, integer, smallint, float8, float8, text"


def _unnest_insert(table: str, columns: str, types: str) -> str:
    """A multi-row INSERT from one array per column: one statement, however many rows."""
    arrays = ", ".join(f"%s::{t.strip()}[]" for t in types.split(","))
    return f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({arrays})"


_INSERT_WEBHOOKS = _unnest_insert("webhooks", f"id, {WEBHOOK_INSERT_COLUMNS}", _WEBHOOK_TYPES)
_INSERT_EVENTS = _unnest_insert("events", _EVENT_COLUMNS, _EVENT_TYPES)
_INSERT_PAYLOADS = _unnest_insert("event_payloads", "seq, payload", "bigint, bytea")
_INSERT_REJECTIONS = _unnest_insert(
    "rejections",
    REJECTION_INSERT_COLUMNS,
    "text, text, float8, integer, text, text, bytea, bytea, integer, text, smallint",
)


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as one list per column (what ``unnest`` takes)."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width


def _forget_events(conn: psycopg.Connection[Any], seqs: list[int]) -> None:
    """Delete what belonged to the deleted events ``seqs``: payloads and attempt history."""
    conn.execute("DELETE FROM event_payloads WHERE seq = ANY(%s)", (seqs,))
    conn.execute("DELETE FROM attempts WHERE seq = ANY(%s)", (seqs,))


def _one(cur: psycopg.Cursor[Any]) -> Any:
    """The one row a statement returns."""
    row = cur.fetchone()
    assert row is not None
    return row


class PostgresOutbox(WriterOutbox[Session], OutboxReads):
    """The :class:`gateway.outbox.Outbox` on a PostgreSQL database (14 or newer).

    ``url`` is a libpq URL. ``migrate``: ``"auto"`` applies missing schema migrations at open
    (under an advisory lock), ``"off"`` refuses a schema that is not current. ``listen``:
    wake this replica's forwarder when another replica stores events. Raises
    :class:`OutboxUnavailable` when the database cannot be reached or its schema does not fit,
    and :class:`CipherError` as :class:`gateway.outbox.sqlite.SQLiteOutbox` does.
    """

    dialect = POSTGRES

    def __init__(
        self,
        url: str,
        *,
        durability: Durability = "power_loss",
        dedup_window: float = 86400.0,
        cipher: Cipher | None = None,
        clock: Callable[[], float] = time.time,
        compress: bool = True,
        pool_size: int = 4,
        statement_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        migrate: Literal["auto", "off"] = "auto",
        listen: bool = True,
    ) -> None:
        if durability not in _SYNCHRONOUS_COMMIT:
            raise ValueError(f"durability must be power_loss or process_crash, not {durability!r}")
        self.durability = durability
        self.dedup_window = dedup_window
        self.codec = RowCodec(cipher, compress)
        self.clock = clock
        self.replica = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._url = url
        self._options = connection_options(statement_timeout, connect_timeout)
        self._rejected = RejectionBuffer()
        self._leases = Leases()
        self.health = common.WriteHealth()
        self._prepare(migrate)
        self._pool = self._open_pool(pool_size, connect_timeout)
        session = Session(lambda: self._connect(autocommit=True, writer=True))
        try:
            session.ensure()
        except BaseException:
            self._pool.close()
            raise
        self._writer = GroupCommitWriter(
            session, PgTransactions(self.replica), before_commit=self._write_rejections
        )
        self._writer.before_commit_due = lambda: bool(self._rejected)
        self._listener = (
            Listener(lambda: self._connect(autocommit=True), self.replica) if listen else None
        )

    @classmethod
    def open(cls, config: OutboxConfig, environ: Mapping[str, str] | None = None) -> PostgresOutbox:
        """Open the database ``config`` names; errors as :meth:`__init__`'s (and ConfigError
        for a secret reference that does not resolve)."""
        cipher = None
        try:
            if config.encryption_key:
                cipher = Cipher(resolve_secret(config.encryption_key, environ))
            return cls(
                database_url(config, environ),
                durability=config.durability,
                dedup_window=config.dedup_window,
                cipher=cipher,
                compress=config.compression == "zlib",
                pool_size=config.pool_size,
                statement_timeout=config.statement_timeout,
                connect_timeout=config.connect_timeout,
                migrate=config.migrate,
                listen=config.listen,
            )
        except CipherError as exc:
            raise OutboxUnavailable(f"outbox.encryption_key: {exc}") from None

    def on_remote_events(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (from a thread of its own) when another replica stored events."""
        if self._listener is not None:
            self._listener.callbacks.append(callback)

    @property
    def listening(self) -> threading.Event:
        """Set while this instance receives other replicas' wake-ups."""
        return self._listener.ready if self._listener is not None else threading.Event()

    # -- receive side -------------------------------------------------------------------

    def _accept_many(self, conn: Session, calls: Sequence[AcceptCall]) -> list[AcceptResult]:
        """Store the webhooks of ``calls`` and their events: a few statements for all of them."""
        ids = self._next_values(conn, "webhook_ids", len(calls))
        rows = [(webhook_id, *call.row) for webhook_id, call in zip(ids, calls, strict=True)]
        conn.execute(_INSERT_WEBHOOKS, _columns(rows, 11))
        return self._store_accepted(conn, ids, calls)

    @staticmethod
    def _next_values(conn: Session, sequence: str, n: int) -> list[int]:
        if n == 0:
            return []
        rows = conn.execute(
            "SELECT nextval(%s) FROM generate_series(1, %s)", (sequence, n)
        ).fetchall()
        return sorted(row[0] for row in rows)

    def _store_events(
        self, conn: Session, batches: Sequence[EventBatch], body_keys: Sequence[str | None] = ()
    ) -> list[tuple[int, int]]:
        """Insert each webhook's events; ``(stored, duplicates)`` per webhook.

        Every event gets a seq first (one webhook's events in order). Body keys are claimed in
        ``dedup`` first: a webhook whose key another webhook holds (here or in another replica)
        is a duplicate whole. Then the remaining events' ids are claimed in one statement, and
        events whose id another webhook holds are dropped (their seqs stay unused).
        """
        now = self.clock()
        dedup = self.dedup_window > 0
        total = sum(len(batch[1]) for batch in batches)
        seqs = iter(self._next_values(conn, "event_seqs", total))
        plan = common.plan_events(batches, set(), seqs, now, dedup, body_keys)
        counts = plan.counts
        event_rows = plan.event_rows
        dedup_rows = plan.dedup_rows
        window_start = now - self.dedup_window
        claimed = plan.key_rows
        if plan.key_rows:
            fresh_keys = self._claim_dedup(conn, [row[:3] for row in plan.key_rows], window_start)
            replayed = {index for key, _, _, index in plan.key_rows if key not in fresh_keys}
            claimed = [row for row in plan.key_rows if row[0] in fresh_keys]
            if replayed:
                for index in replayed:
                    counts[index] = (0, len(batches[index][1]))
                gone = {batches[index][0] for index in replayed}
                dropped = {row[0] for row in event_rows if row[1] in gone}
                event_rows = [row for row in event_rows if row[1] not in gone]
                dedup_rows = [row for row in dedup_rows if row[2] not in dropped]
        if dedup_rows:
            fresh = self._claim_dedup(conn, dedup_rows, window_start)
            if len(fresh) < len(dedup_rows):
                position = {batch[0]: i for i, batch in enumerate(batches)}
                kept = []
                for row in event_rows:
                    if row[2] is None or row[2] in fresh:
                        kept.append(row)
                    else:  # another webhook (here or in another replica) holds the id
                        stored, duplicates = counts[position[row[1]]]
                        counts[position[row[1]]] = (stored - 1, duplicates + 1)
                event_rows = kept
                self._follow_first_events(conn, claimed, batches, event_rows)
        if event_rows:
            stored_seqs = {row[0] for row in event_rows}
            payloads = [row for row in plan.payload_rows if row[0] in stored_seqs]
            conn.execute(_INSERT_EVENTS, _columns(event_rows, 9))
            conn.execute(_INSERT_PAYLOADS, _columns(payloads, 2))
            conn.notify = True
        # Expired dedup entries are swept by prune (one replica at a time), not here: a sweep
        # in the accept path would take row locks that other replicas' groups are upserting.
        return counts

    def held_event_ids(self, event_ids: Sequence[str], now: float | None = None) -> set[str]:
        """Which of ``event_ids`` :meth:`accept` would skip now (a pool read, no write)."""
        if self.dedup_window <= 0 or not event_ids:
            return set()
        at = self.clock() if now is None else now
        args = {"ids": list(dict.fromkeys(event_ids)), "after": at - self.dedup_window}
        return {row[0] for row in self._read_query(_SEEN, args)}

    def take_lease(self, name: str, holder: str, seconds: float, now: float | None = None) -> bool:
        """Hold (or renew) the named lease for ``seconds`` unless another holder's is running;
        one upsert, so two replicas taking an expired lease at once cannot both get it."""
        at = self.clock() if now is None else now
        with self._transaction() as conn:
            args = {"name": name, "holder": holder, "until": at + seconds, "at": at}
            return conn.execute(_TAKE_LEASE, args).fetchone() is not None

    @staticmethod
    def _claim_dedup(
        conn: Session, rows: Sequence[tuple[str, float, int]], window_start: float
    ) -> set[str]:
        """Upsert ``(id, first_seen, seq)`` rows into ``dedup``; the ids now held by them."""
        ids, firsts, seqs = _columns(rows, 3)
        return {
            row[0] for row in conn.execute(_DEDUP, (ids, firsts, seqs, window_start)).fetchall()
        }

    @staticmethod
    def _follow_first_events(
        conn: Session,
        claimed: Sequence[tuple[str, float, int, int]],
        batches: Sequence[EventBatch],
        event_rows: Sequence[tuple[Any, ...]],
    ) -> None:
        """Point each body key this group claimed (``EventPlan.key_rows``) at its webhook's
        first event still stored (0: none, and the key stays held)."""
        if not claimed:
            return
        first: dict[int, int] = {}
        for row in event_rows:
            first.setdefault(row[1], row[0])
        moved = [
            (key, held)
            for key, _, seq, index in claimed
            if (held := common.key_seq(key, first.get(batches[index][0], 0))) != seq
        ]
        if moved:
            keys, seqs = _columns(moved, 2)
            conn.execute(
                "UPDATE dedup SET seq = m.seq FROM unnest(%s::text[], %s::bigint[]) AS m(key, seq)"
                " WHERE dedup.event_id = m.key",
                (keys, seqs),
            )

    def _prune_dedup(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            "DELETE FROM dedup WHERE first_seen <= %s", (self.clock() - self.dedup_window,)
        )

    # -- forwarder side -----------------------------------------------------------------

    def _claim_events(
        self, at: float, max_events: int, max_bytes: int, lease_seconds: float, token: str
    ) -> list[tuple[Any, ...]]:
        with self._transaction(durable=False) as conn:
            next_due, last_due, next_expiry = _one(conn.execute(_IDLE))
            if common.unstep_due(
                lambda sql, args: conn.execute(POSTGRES.sql(sql), args), last_due, at
            ):
                next_due = at
            # cheap answer for the idle poll, and during an outage when every row waits
            if (next_due is None or next_due > at) and (next_expiry is None or next_expiry >= at):
                return []
            rows = conn.execute(_CLAIM, {"at": at, "limit": max_events + 1}).fetchall()
            chosen = common.fit(rows, max_events, max_bytes)
            if not chosen:
                return []
            return conn.execute(_LEASE, (at + lease_seconds, token, chosen)).fetchall()

    def ack(self, seqs: Sequence[int], *, answer: Answer | None = None) -> None:
        """Mark events delivered (also after their lease expired, unless another took it)."""
        self._held_update(
            "UPDATE events SET state = 'delivered', delivered_at = %s, delivery_status = %s,"
            f" delivery_ms = %s, lease_until = NULL, lease_token = NULL {_HELD}",
            seqs,
            (self.clock(), *common.answer_columns(answer)),
            durable=False,  # a lost ack is a resend, which the Event API drops by id
        )

    def release(
        self, seqs: Sequence[int], *, retry_at: float, error: str, answer: Answer | None = None
    ) -> None:
        """Return leased events for a retry at ``retry_at`` (clamped, see
        :data:`~gateway.outbox.common.MAX_DUE_AHEAD`), counting an attempt."""
        now = self.clock()
        self._held_update(
            "UPDATE events SET state = 'pending', attempts = attempts + 1, next_attempt_at = %s,"
            f" last_error = %s, lease_until = NULL, lease_token = NULL {_HELD}",
            seqs,
            (common.clamp_due(retry_at, now), error),
            history=("retry", now, error, answer),
        )

    def unlease(self, seqs: Sequence[int]) -> None:
        """Give leased events back without counting an attempt (shutdown before sending)."""
        self._held_update(
            f"UPDATE events SET state = 'pending', lease_until = NULL, lease_token = NULL {_HELD}",
            seqs,
            (),
            durable=False,
        )

    def dead_letter(self, seq: int, error: str, *, answer: Answer | None = None) -> None:
        """Dead-letter an event this instance holds; the failed attempt counts."""
        self._held_update(
            "UPDATE events SET state = 'dead', attempts = attempts + 1, last_error = %s,"
            f" lease_until = NULL, lease_token = NULL {_HELD}",
            [seq],
            (error,),
            history=("dead", self.clock(), error, answer),
        )

    def renew(
        self, seqs: Sequence[int], lease_seconds: float, now: float | None = None
    ) -> set[int]:
        """Extend this instance's leases on ``seqs``; returns the seqs it still holds."""
        at = self.clock() if now is None else now
        changed = self._held_update(
            f"UPDATE events SET lease_until = %s {_HELD}",
            seqs,
            (at + lease_seconds,),
            durable=False,
            forget=False,
        )
        return set(changed)

    def retry_dead(self, seqs: Sequence[int] | None = None) -> int:
        """Make dead events pending and due now, keeping their attempt count; see
        :func:`gateway.outbox.common.requeue_choice` for the ones left dead."""
        now = self.clock()
        with self._transaction() as conn:
            dead = conn.execute(
                _DEAD_HELD, {"seqs": None if seqs is None else list(seqs)}
            ).fetchall()
            rows = conn.execute(
                "UPDATE events SET state = 'pending', next_attempt_at = %s"
                " WHERE state = 'dead' AND seq = ANY(%s) RETURNING seq",
                (now, common.requeue_choice(dead)),
            ).fetchall()
            changed = sorted(row[0] for row in rows)
            self._record_attempts(conn, changed, ("requeued", now, None, None))
        return len(changed)

    def _held_update(
        self,
        sql: str,
        seqs: Sequence[int],
        args: tuple[Any, ...],
        *,
        history: History | None = None,
        durable: bool = True,
        forget: bool = True,
    ) -> list[int]:
        """Run ``sql`` (ending in :data:`_HELD`) on the rows of ``seqs`` this instance still
        holds; returns the changed seqs. ``forget`` drops their tokens (the lease is over)."""
        held = [(seq, t) for t, part in self._leases.by_token(seqs).items() for seq in part]
        if not held:
            return []
        wanted, tokens = _columns(held, 2)
        with self._transaction(durable=durable) as conn:
            changed = [
                row[0]
                for row in conn.execute(
                    f"{sql} RETURNING events.seq", (*args, wanted, tokens)
                ).fetchall()
            ]
            if history is not None:
                self._record_attempts(conn, changed, history)
        self._leases.drop(seqs if forget else set(seqs) - set(changed))
        return changed

    @staticmethod
    def _record_attempts(conn: psycopg.Connection[Any], seqs: list[int], history: History) -> None:
        if not seqs:
            return
        outcome, at, error, answer = history
        conn.execute(
            "INSERT INTO attempts (seq, at, outcome, error, status, latency_ms)"
            " SELECT s, %s, %s, %s, %s, %s FROM unnest(%s::bigint[]) AS s",
            (at, outcome, error, *common.answer_columns(answer), seqs),
        )
        if outcome == "retry":
            # past the cap, each new retry row replaces the oldest one (the count stays)
            conn.execute(
                "DELETE FROM attempts WHERE id IN (SELECT (SELECT MIN(a.id) FROM attempts a"
                " WHERE a.seq = e.seq AND a.outcome = 'retry') FROM events e"
                " WHERE e.seq = ANY(%s) AND e.attempts > %s)",
                (seqs, MAX_RETRY_HISTORY),
            )

    # -- rejections ---------------------------------------------------------------------

    def _write_rejections(self, conn: Session) -> None:
        rows = [self.codec.rejection_row(r) for r in self._rejected.drain()]
        if rows:
            conn.execute(_INSERT_REJECTIONS, _columns(rows, 11))

    def prune_rejections(self, older_than: float, keep: int, max_bytes: int | None = None) -> int:
        """Delete rejections older than ``older_than``, beyond the newest ``keep``, and the
        oldest beyond ``max_bytes`` of stored headers and bodies; in small transactions, so
        accepts never wait behind a large prune."""
        with self._transaction(durable=False) as conn:
            # the newest id to delete: by count, and by the bytes the newer rows hold
            (by_count,) = conn.execute(
                POSTGRES.sql(common.REJECTIONS_BY_COUNT), {"keep": max(0, keep)}
            ).fetchone() or (0,)
            by_bytes = 0
            if max_bytes is not None:
                row = conn.execute(
                    POSTGRES.sql(common.REJECTIONS_BY_BYTES), {"max_bytes": max_bytes}
                ).fetchone()
                by_bytes = row[0] if row else 0
        args = {
            "cutoff": max(by_count, by_bytes),
            "older_than": older_than,
            "limit": REJECTION_PRUNE_CHUNK,
        }
        return common.in_chunks(
            lambda: self._delete(POSTGRES.sql(common.REJECTIONS_PRUNE), args),
            REJECTION_PRUNE_CHUNK,
        )

    # -- housekeeping -------------------------------------------------------------------

    def prune(self, older_than: float) -> int:
        """Delete events delivered before ``older_than``, then webhooks left without events.

        In chunks, each its own transaction; one replica at a time (the others find the lock
        taken and leave it to that one). Expired dedup entries go too (they are not counted).
        """
        total = 0
        while True:
            with self._transaction(durable=False) as conn:
                if not _one(conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (_PRUNE_LOCK,)))[
                    0
                ]:
                    return total
                seqs = [
                    row[0]
                    for row in conn.execute(
                        "DELETE FROM events WHERE seq IN (SELECT seq FROM events"
                        " WHERE state = 'delivered' AND delivered_at < %s LIMIT %s)"
                        " RETURNING seq",
                        (older_than, PRUNE_CHUNK),
                    ).fetchall()
                ]
                _forget_events(conn, seqs)
                gone = (
                    len(seqs)
                    + conn.execute(
                        "DELETE FROM webhooks WHERE id IN (SELECT id FROM webhooks w"
                        " WHERE status <> 'quarantined' AND received_at < %s AND NOT EXISTS"
                        " (SELECT 1 FROM events e WHERE e.webhook_id = w.id) LIMIT %s)",
                        (older_than, PRUNE_CHUNK),
                    ).rowcount
                )
                if gone < PRUNE_CHUNK:
                    self._prune_dedup(conn)
            total += gone
            if gone < PRUNE_CHUNK:
                return total

    def purge(self, states: Collection[str] | None = None, before: float | None = None) -> int:
        """Delete rows in ``states`` (default: all of :data:`PURGE_STATES`); see Outbox.

        Works in chunks of :data:`PRUNE_CHUNK` rows, each its own transaction (as
        :meth:`prune`), so a running gateway's accepts and claims go on between them.
        """
        wanted, cutoff, event_states = common.purge_plan(states, before)

        def events() -> int:
            with self._transaction() as conn:
                rows = conn.execute(
                    "DELETE FROM events WHERE seq IN (SELECT seq FROM events"
                    " WHERE state = ANY(%s) AND created_at < %s LIMIT %s) RETURNING seq, state",
                    (event_states, cutoff, PRUNE_CHUNK),
                ).fetchall()
                seqs = [seq for seq, _ in rows]
                _forget_events(conn, seqs)
                # a purged dead event no longer blocks its id from being accepted again
                dead = [seq for seq, state in rows if state == "dead"]
                conn.execute("DELETE FROM dedup WHERE seq = ANY(%s)", (dead,))
            return len(seqs)

        def webhooks(status: str) -> Callable[[], int]:
            empty = "" if "= 'quarantined'" in status else _NO_EVENTS
            sql = (
                f"DELETE FROM webhooks WHERE id IN (SELECT id FROM webhooks w WHERE {status}"
                f" AND received_at < %(cutoff)s{empty} LIMIT %(limit)s)"
            )
            return lambda: self._delete(sql, {"cutoff": cutoff, "limit": PRUNE_CHUNK})

        return common.purge_in_chunks(wanted, event_states, events, webhooks)

    def _delete(self, sql: str, args: Mapping[str, Any]) -> int:
        """Run one DELETE in its own transaction; rows deleted."""
        with self._transaction() as conn:
            return conn.execute(sql, args).rowcount

    def check_writable(self) -> None:
        """Commit a heartbeat through the writer; raises :class:`OutboxUnavailable` if it fails."""

        def job(conn: Session) -> None:
            conn.execute(
                "INSERT INTO heartbeat (replica, at, pid) VALUES (%s, %s, %s)"
                " ON CONFLICT (replica) DO UPDATE SET at = excluded.at, pid = excluded.pid",
                (self.replica, self.clock(), os.getpid()),
            )

        self._call(job)

    def close(self) -> None:
        """Finish every queued write (and buffered rejection), then close. Idempotent."""
        if self._rejected.unflushed:
            with contextlib.suppress(OutboxUnavailable):
                self._writer.submit(lambda conn: None)
        self._writer.close()
        if self._listener is not None:
            self._listener.close()
        self._pool.close()

    # -- opening ------------------------------------------------------------------------

    def _connect(
        self, *, autocommit: bool = False, writer: bool = False
    ) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self._url, autocommit=autocommit, **self._options)
        if writer:
            conn.execute(
                f"SET synchronous_commit = {_SYNCHRONOUS_COMMIT[self.durability]}".encode()
            )
        return conn

    def _prepare(self, mode: Literal["auto", "off"]) -> None:
        """Check the server and the schema (migrating it under ``auto``) and the keys."""
        try:
            with self._connect(autocommit=True) as conn:
                check_server(conn)
                if mode == "auto":
                    migrate(conn)
                else:
                    check_schema(conn)
                with conn.transaction():
                    check_keys(conn, self.codec.cipher, self.clock(), POSTGRES)
        except psycopg.Error as exc:
            raise OutboxUnavailable(f"cannot open the database outbox: {exc}") from None

    def _open_pool(self, size: int, timeout: float) -> ConnectionPool[Any]:
        pool: ConnectionPool[Any] = ConnectionPool(
            self._url,
            kwargs=self._options,
            min_size=1,
            max_size=size,
            timeout=timeout,
            check=ConnectionPool.check_connection,  # a restarted server's dead sockets go
            name="webhook-gateway-outbox",
            open=False,
        )
        pool.open(wait=True, timeout=timeout)
        return pool

    # -- plumbing -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self, *, durable: bool = True) -> Iterator[psycopg.Connection[Any]]:
        """A pool connection in a transaction, committed at the end; database errors are
        :class:`OutboxUnavailable`. ``durable=False``: a crash of the server may undo it."""
        if self._writer.closed:
            raise OutboxUnavailable("the outbox is closed")
        try:
            with self._pool.connection() as conn:
                if not durable or self.durability == "process_crash":
                    conn.execute("SET LOCAL synchronous_commit = off")
                yield conn
        except psycopg.Error as exc:
            raise unavailable(exc) from None

    def _read_query(self, sql: str, args: Mapping[str, Any] | None = None) -> list[Any]:
        with self._transaction(durable=False) as conn:
            return conn.execute(sql, args).fetchall()
