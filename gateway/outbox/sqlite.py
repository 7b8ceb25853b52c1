"""The embedded outbox: one SQLite file in WAL mode, written through one group-commit thread.

Every write goes through a single writer thread that owns the write connection. It takes one
job, then every job already queued, and runs them all in one ``BEGIN IMMEDIATE`` transaction,
each inside its own savepoint so a failing job rolls back alone and gets its own exception.
One ``COMMIT`` (one fsync with ``durability="power_loss"``) then resolves every job's future:
concurrent webhooks share a commit. Reads use a second connection, which WAL lets run beside
the writer. Several processes on one host may share the file: SQLite's lock serializes their
write transactions and leases keep their forwarders from holding the same event at once.

This module holds the write side's SQL; the file's schema and opening live in
:mod:`gateway.outbox.sqlite_schema`, the read queries in :mod:`gateway.outbox.sqlite_read`,
and everything backend-neutral in :mod:`gateway.outbox.codec`, :mod:`gateway.outbox.common`
and :mod:`gateway.outbox.writer`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Literal, TypeVar

from gateway.config import OutboxConfig, resolve_secret
from gateway.outbox import (
    AcceptResult,
    Answer,
    OutboxUnavailable,
    common,
)
from gateway.outbox.codec import REJECTION_INSERT_COLUMNS, WEBHOOK_INSERT_COLUMNS, RowCodec
from gateway.outbox.common import (
    DEDUP_PRUNE_EVERY,
    EVENT_COLUMNS,
    MAX_RETRY_HISTORY,
    AcceptCall,
    EventBatch,
    History,
    Leases,
    RejectionBuffer,
    chunks,
    fit,
)
from gateway.outbox.crypto import Cipher, CipherError
from gateway.outbox.sqlite_read import SQLiteReads, _marks
from gateway.outbox.sqlite_retention import SQLiteRetention
from gateway.outbox.sqlite_schema import SCHEMA_VERSION, SYNCHRONOUS, FileSpec, open_retrying
from gateway.outbox.writer import GroupCommitWriter, Transactions

__all__ = ["FILE_NAME", "MAX_RETRY_HISTORY", "SCHEMA_VERSION", "SQLiteOutbox"]

T = TypeVar("T")
Durability = Literal["power_loss", "process_crash"]

FILE_NAME = "outbox.sqlite3"
_MAX_ROWS_PER_INSERT = 256  # rows per multi-row INSERT: 256 x 11 values, far below SQLite's cap

# A due pending row, unless an earlier event of its webhook is still in flight or waiting for
# its retry: one webhook's events go out in order even across retries and processes.
_DUE = """
SELECT seq, webhook_id, size FROM events AS e INDEXED BY events_pending
WHERE state = 'pending' AND next_attempt_at <= :at AND NOT EXISTS (
    SELECT 1 FROM events AS p
    WHERE p.webhook_id = e.webhook_id AND p.seq < e.seq AND (
        (p.state = 'pending' AND p.next_attempt_at > :at)
        OR (p.state = 'leased' AND p.lease_until >= :at)))
ORDER BY seq LIMIT :limit
"""
_EXPIRED = """
SELECT seq, webhook_id, size FROM events INDEXED BY events_leased
WHERE state = 'leased' AND lease_until < :at ORDER BY seq LIMIT :limit
"""
# the largest id a table ever used: AUTOINCREMENT's counter, or its largest row
_LAST_WEBHOOK_ID = (
    "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'webhooks'), 0),"
    " COALESCE((SELECT MAX(id) FROM webhooks), 0))"
)
_LAST_EVENT_SEQ = (
    "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),"
    " COALESCE((SELECT MAX(seq) FROM events), 0))"
)


# dead events with whether a live copy (accepted again since, not dead) holds their id
_DEAD_HELD = """
SELECT e.seq, e.event_id, EXISTS (
    SELECT 1 FROM dedup d LEFT JOIN events o ON o.seq = d.seq
    WHERE d.event_id = e.event_id AND d.seq <> e.seq AND o.state IS NOT 'dead')
FROM events e WHERE e.state = 'dead'"""

# a row this instance still holds: leased under its token (the token and the seqs follow)
_HELD = "state = 'leased' AND lease_token = ? AND seq IN ({marks})"


class _SQLiteTransactions(Transactions[sqlite3.Connection]):
    """``BEGIN IMMEDIATE`` takes the write lock up front; SQLite's own rollback (disk full,
    I/O error) ends the transaction, which the writer sees as a lost group."""

    driver_error = sqlite3.Error

    def begin(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")

    def in_transaction(self, conn: sqlite3.Connection) -> bool:
        return conn.in_transaction


class SQLiteOutbox(SQLiteRetention, SQLiteReads):
    """The :class:`gateway.outbox.Outbox` on one SQLite file.

    ``durability="power_loss"`` fsyncs every commit (``synchronous=FULL``); ``"process_crash"``
    survives a crash of the process but may lose the last commits on power loss
    (``synchronous=NORMAL``). ``cipher`` encrypts bodies, headers, query strings and event
    payloads at rest. ``clock`` is injectable for tests; ``max_pages`` caps the file size
    (SQLite's ``max_page_count``); ``busy_timeout`` is how long a write waits for another
    process's transaction before :class:`OutboxUnavailable`.

    Raises :class:`OutboxUnavailable` when the file cannot be opened for writing, and
    :class:`CipherError` when rows that may still be read are encrypted with a key that is
    not configured.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durability: Durability = "power_loss",
        dedup_window: float = 86400.0,
        cipher: Cipher | None = None,
        clock: Callable[[], float] = time.time,
        max_pages: int | None = None,
        busy_timeout: float = 10.0,
        compress: bool = True,
    ) -> None:
        if durability not in SYNCHRONOUS:
            raise ValueError(f"durability must be power_loss or process_crash, not {durability!r}")
        self.path = Path(path)
        self.durability = durability
        self.dedup_window = dedup_window
        self.codec = RowCodec(cipher, compress)
        self.clock = clock
        self._accepts = 0
        self._rejected = RejectionBuffer()
        self._leases = Leases()
        self.health = common.WriteHealth()
        spec = FileSpec(
            self.path,
            synchronous=SYNCHRONOUS[durability],
            busy_timeout=busy_timeout,
            max_pages=max_pages,
            cipher=cipher,
            clock=clock,
        )
        write, self._read = open_retrying(spec)
        self._read_lock = threading.Lock()
        self._writer = GroupCommitWriter(
            write, _SQLiteTransactions(), before_commit=self._write_rejections
        )
        self._writer.before_commit_due = lambda: bool(self._rejected)

    @classmethod
    def open(
        cls,
        data_dir: str | os.PathLike[str],
        config: OutboxConfig,
        environ: Mapping[str, str] | None = None,
    ) -> SQLiteOutbox:
        """Open ``<data_dir>/outbox.sqlite3`` (creating both) as ``config`` describes.

        Raises :class:`OutboxUnavailable` for an unusable directory, file or encryption key;
        :class:`gateway.config.ConfigError` when the key's secret reference does not resolve.
        """
        directory = Path(data_dir)
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise OutboxUnavailable(
                f"cannot create data directory {directory}: {exc.strerror}"
            ) from None
        cipher = None
        try:
            if config.encryption_key:
                cipher = Cipher(resolve_secret(config.encryption_key, environ))
            return cls(
                directory / FILE_NAME,
                durability=config.durability,
                dedup_window=config.dedup_window,
                cipher=cipher,
                compress=config.compression == "zlib",
            )
        except CipherError as exc:
            raise OutboxUnavailable(f"outbox.encryption_key: {exc}") from None

    # -- forwarder side -----------------------------------------------------------------

    def renew(
        self, seqs: Sequence[int], lease_seconds: float, now: float | None = None
    ) -> set[int]:
        """Extend this instance's leases on ``seqs``; returns the seqs it still holds.

        A lease that ran out but was not claimed again is still this instance's and is renewed.
        """
        at = self.clock() if now is None else now
        return self._leased_update(
            "UPDATE events SET lease_until = ? WHERE state = 'leased' AND lease_token = ?"
            " AND seq IN ({marks}) RETURNING seq",
            seqs,
            at + lease_seconds,
            ended=False,
        )

    def ack(self, seqs: Sequence[int], *, answer: Answer | None = None) -> None:
        """Mark events delivered (also after their lease ran out, unless claimed again)."""
        # The delivery is history too, read from delivered_at and the answer beside it (see
        # common.with_delivery): an attempts row per delivered event would cost every event two
        # more B-tree writes.
        self._leased_update(
            "UPDATE events SET state = 'delivered', delivered_at = ?, delivery_status = ?,"
            " delivery_ms = ?, lease_until = NULL, lease_token = NULL"
            f" WHERE {_HELD} RETURNING seq",
            seqs,
            self.clock(),
            *common.answer_columns(answer),
        )

    def release(
        self, seqs: Sequence[int], *, retry_at: float, error: str, answer: Answer | None = None
    ) -> None:
        """Return leased events for a retry at ``retry_at`` (clamped, see
        :data:`~gateway.outbox.common.MAX_DUE_AHEAD`), counting an attempt."""
        now = self.clock()
        self._leased_update(
            "UPDATE events SET state = 'pending', attempts = attempts + 1, next_attempt_at = ?,"
            f" last_error = ?, lease_until = NULL, lease_token = NULL WHERE {_HELD}"
            " RETURNING seq",
            seqs,
            common.clamp_due(retry_at, now),
            error,
            history=("retry", now, error, answer),
        )

    def unlease(self, seqs: Sequence[int]) -> None:
        """Give leased events back without counting an attempt (shutdown before sending)."""
        self._leased_update(
            "UPDATE events SET state = 'pending', lease_until = NULL, lease_token = NULL"
            f" WHERE {_HELD} RETURNING seq",
            seqs,
        )

    def dead_letter(self, seq: int, error: str, *, answer: Answer | None = None) -> None:
        """Dead-letter a leased event; the failed attempt counts."""
        self._leased_update(
            "UPDATE events SET state = 'dead', attempts = attempts + 1, last_error = ?,"
            f" lease_until = NULL, lease_token = NULL WHERE {_HELD} RETURNING seq",
            [seq],
            error,
            history=("dead", self.clock(), error, answer),
        )

    def retry_dead(self, seqs: Sequence[int] | None = None) -> int:
        """Make dead events pending and due now, keeping their attempt count; see
        :func:`gateway.outbox.common.requeue_choice` for the ones left dead."""
        now = self.clock()
        wanted = None if seqs is None else chunks(seqs)

        def job(conn: sqlite3.Connection) -> int:
            rows: list[tuple[int, str | None, int]] = []
            for part in [None] if wanted is None else wanted:
                where = "" if part is None else f" AND e.seq IN ({_marks(part)})"
                rows += conn.execute(_DEAD_HELD + where, part or ()).fetchall()
            changed: list[int] = []
            for part in chunks(common.requeue_choice(rows)):
                changed += [
                    row[0]
                    for row in conn.execute(
                        "UPDATE events SET state = 'pending', next_attempt_at = ?"
                        f" WHERE state = 'dead' AND seq IN ({_marks(part)}) RETURNING seq",
                        (now, *part),
                    )
                ]
            self._record_attempts(conn, changed, ("requeued", now, None, None))
            return len(changed)

        return self._call(job)

    @staticmethod
    def _record_attempts(conn: sqlite3.Connection, seqs: Sequence[int], history: History) -> None:
        outcome, at, error, answer = history
        status, latency = common.answer_columns(answer)
        conn.executemany(
            "INSERT INTO attempts (seq, at, outcome, error, status, latency_ms)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(seq, at, outcome, error, status, latency) for seq in seqs],
        )
        if outcome != "retry":
            return
        # Past the cap, each new retry row replaces the oldest one (the count stays in events).
        for part in chunks(seqs):
            conn.execute(
                "DELETE FROM attempts WHERE id IN (SELECT (SELECT MIN(a.id) FROM attempts a"
                " WHERE a.seq = e.seq AND a.outcome = 'retry') FROM events e"
                f" WHERE e.seq IN ({_marks(part)}) AND e.attempts > ?)",
                [*part, MAX_RETRY_HISTORY],
            )

    # -- rejections ---------------------------------------------------------------------

    def _write_rejections(self, conn: sqlite3.Connection) -> None:
        """The writer's pre-commit hook: insert every buffered rejection."""
        rows = [self.codec.rejection_row(r) for r in self._rejected.drain()]
        if rows:
            conn.executemany(
                f"INSERT INTO rejections ({REJECTION_INSERT_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def check_writable(self) -> None:
        """Commit a heartbeat through the writer; raises :class:`OutboxUnavailable` if it fails."""

        def job(conn: sqlite3.Connection) -> None:
            # a random pad needs fresh pages, so a full disk shows here first; after a failed
            # accept the pad is as large as that webhook (see common.WriteHealth)
            conn.execute(
                "INSERT INTO heartbeat (id, at, pid, pad) VALUES (1, ?, ?, ?) ON CONFLICT (id)"
                " DO UPDATE SET at = excluded.at, pid = excluded.pid, pad = excluded.pad",
                (self.clock(), os.getpid(), os.urandom(self.health.probe_bytes)),
            )

        try:
            self._call(job)
        except OutboxUnavailable as exc:
            # what gives way for a webhook gives way for the probe that admits webhooks
            if not (common.is_full(exc) and self.make_room()):
                raise
            self._call(job)
        self.health.recovered()

    def close(self) -> None:
        """Finish every queued write (and buffered rejection), then close. Idempotent."""
        if self._rejected.unflushed:
            with contextlib.suppress(OutboxUnavailable):
                self._submit(lambda conn: None)
        self._writer.close()
        with self._read_lock, contextlib.suppress(sqlite3.Error):
            self._read.close()

    # -- plumbing -----------------------------------------------------------------------

    def _submit(self, fn: Callable[[sqlite3.Connection], T]) -> Future[T]:
        return self._writer.submit(fn)

    def _update(
        self,
        sql: str,
        groups: Sequence[tuple[tuple[Any, ...], Sequence[int]]],
        history: History | None = None,
    ) -> set[int]:
        """Run ``sql`` (ending in ``seq IN ({marks}) RETURNING seq``) with each group's
        arguments over its seqs, in chunks; returns the seqs it changed. With ``history``
        each changed event gets an attempt row in the same transaction."""
        work = [(args, chunk) for args, seqs in groups for chunk in chunks(seqs)]
        if not work:
            return set()

        def job(conn: sqlite3.Connection) -> set[int]:
            changed: set[int] = set()
            for args, chunk in work:
                cur = conn.execute(sql.format(marks=_marks(chunk)), (*args, *chunk))
                rows = [row[0] for row in cur.fetchall()]
                if history is not None:
                    self._record_attempts(conn, rows, history)
                changed.update(rows)
            return changed

        return self._call(job)

    def _leased_update(
        self,
        sql: str,
        seqs: Sequence[int],
        *args: Any,
        history: History | None = None,
        ended: bool = True,
    ) -> set[int]:
        """:meth:`_update` on the seqs this instance holds, each with its lease token after
        ``args`` (a stale holder changes nothing). ``ended``: the seqs are forgotten after."""
        groups = [((*args, token), part) for token, part in self._leases.by_token(seqs).items()]
        changed = self._update(sql, groups, history)
        self._leases.drop(seqs if ended else set(seqs) - changed)
        return changed

    # -- rows ---------------------------------------------------------------------------

    def _accept_many(
        self, conn: sqlite3.Connection, calls: Sequence[AcceptCall]
    ) -> list[AcceptResult]:
        """Store the webhooks of ``calls`` and their events: a few statements for all of them.

        Ids are given here, after the largest ever used (what AUTOINCREMENT would give): the
        transaction holds SQLite's write lock, so no other connection can take them meanwhile.
        """
        last = conn.execute(_LAST_WEBHOOK_ID).fetchone()[0]
        ids = range(last + 1, last + 1 + len(calls))
        rows = [(webhook_id, *call.row) for webhook_id, call in zip(ids, calls, strict=True)]
        _insert_rows(conn, "webhooks", f"id, {WEBHOOK_INSERT_COLUMNS}", rows)
        return self._store_accepted(conn, ids, calls)

    def _store_events(
        self,
        conn: sqlite3.Connection,
        batches: Sequence[EventBatch],
        body_keys: Sequence[str | None] = (),
    ) -> list[tuple[int, int]]:
        """Insert each webhook's events; ``(stored, duplicates)`` per webhook.

        Each payload comes as stored (see :meth:`RowCodec.seal_payload`) with its row's flags;
        duplicates follow :func:`gateway.outbox.common.plan_events` (a body key is kept in
        ``dedup`` beside the event ids). Seqs follow the largest ever used, as ids in
        :meth:`_accept_many`.
        """
        now = self.clock()
        dedup = self.dedup_window > 0
        wanted = common.wanted_ids(batches, body_keys)
        seen = self._seen_many(conn, wanted, now) if dedup else set()
        last = conn.execute(_LAST_EVENT_SEQ).fetchone()[0]
        seqs = itertools.count(last + 1)
        plan = common.plan_events(batches, seen, seqs, now, dedup, body_keys)
        dedup_rows = plan.dedup_rows + [row[:3] for row in plan.key_rows]
        _insert_rows(conn, "events", EVENT_COLUMNS, plan.event_rows)
        _insert_rows(conn, "event_payloads", "seq, payload", plan.payload_rows)
        _insert_rows(conn, "dedup", "event_id, first_seen, seq", dedup_rows, replace=True)
        before, self._accepts = self._accepts, self._accepts + len(batches)
        if dedup and before // DEDUP_PRUNE_EVERY != self._accepts // DEDUP_PRUNE_EVERY:
            self._prune_dedup(conn)
        return plan.counts

    def _seen_many(self, conn: sqlite3.Connection, event_ids: list[str], now: float) -> set[str]:
        """Which of ``event_ids`` were accepted within the window and not dead-lettered since.

        An entry whose event was pruned (delivered long ago) still counts: its state is NULL.
        """
        return self._seen(lambda sql, args: conn.execute(sql, args).fetchall(), event_ids, now)

    def _seen(
        self,
        query: Callable[[str, Any], list[Any]],
        event_ids: Sequence[str],
        now: float,
    ) -> set[str]:
        seen: set[str] = set()
        for part in chunks(list(dict.fromkeys(event_ids))):
            rows = query(
                "SELECT d.event_id FROM dedup d LEFT JOIN events e ON e.seq = d.seq"
                f" WHERE d.event_id IN ({_marks(part)}) AND d.first_seen > ?"
                " AND e.state IS NOT 'dead'",
                (*part, now - self.dedup_window),
            )
            seen.update(eid for (eid,) in rows)
        return seen

    def held_event_ids(self, event_ids: Sequence[str], now: float | None = None) -> set[str]:
        """Which of ``event_ids`` :meth:`accept` would skip now (read connection, no write)."""
        if self.dedup_window <= 0 or not event_ids:
            return set()
        at = self.clock() if now is None else now
        return self._seen(self._read_query, event_ids, at)

    def take_lease(self, name: str, holder: str, seconds: float, now: float | None = None) -> bool:
        """Hold (or renew) the named lease for ``seconds`` unless another holder's is running."""
        at = self.clock() if now is None else now

        def job(conn: sqlite3.Connection) -> bool:
            conn.execute(
                "INSERT INTO job_leases (name, holder, until) VALUES (:name, :holder, :until)"
                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
                " until = excluded.until"
                " WHERE job_leases.holder = excluded.holder OR job_leases.until <= :at",
                {"name": name, "holder": holder, "until": at + seconds, "at": at},
            )
            row = conn.execute("SELECT holder FROM job_leases WHERE name = ?", (name,)).fetchone()
            return bool(row is not None and row[0] == holder)

        return self._call(job)

    def _prune_dedup(self, conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM dedup WHERE first_seen <= ?", (self.clock() - self.dedup_window,))

    def _claim_events(
        self, at: float, max_events: int, max_bytes: int, lease_seconds: float, token: str
    ) -> list[tuple[Any, ...]]:
        return self._call(
            lambda conn: self._claim(conn, at, max_events, max_bytes, lease_seconds, token)
        )

    def _claim(
        self,
        conn: sqlite3.Connection,
        at: float,
        max_events: int,
        max_bytes: int,
        lease_seconds: float,
        token: str,
    ) -> list[tuple[Any, ...]]:
        next_due, last_due, next_expiry = conn.execute(
            "SELECT (SELECT MIN(next_attempt_at) FROM events WHERE state = 'pending'),"
            " (SELECT MAX(next_attempt_at) FROM events WHERE state = 'pending'),"
            " (SELECT MIN(lease_until) FROM events WHERE state = 'leased')"
        ).fetchone()
        if common.unstep_due(conn.execute, last_due, at):
            next_due = at
        # cheap answer for the idle poll, and during an outage when every row waits for a retry
        if (next_due is None or next_due > at) and (next_expiry is None or next_expiry >= at):
            return []
        window = {"at": at, "limit": max_events + 1}
        rows = conn.execute(_DUE, window).fetchall() + conn.execute(_EXPIRED, window).fetchall()
        chosen = fit(sorted(rows)[: max_events + 1], max_events, max_bytes)
        if not chosen:
            return []
        leased: list[tuple[Any, ...]] = []
        for chunk in chunks(chosen):
            marks = _marks(chunk)
            conn.execute(
                "UPDATE events SET state = 'leased', lease_until = ?, lease_token = ?"
                f" WHERE seq IN ({marks})",
                (at + lease_seconds, token, *chunk),
            )
            leased += conn.execute(
                "SELECT e.seq, e.webhook_id, e.event_id, e.name, p.payload, e.sealed, e.attempts,"
                " e.created_at FROM events e JOIN event_payloads p ON p.seq = e.seq"
                f" WHERE e.seq IN ({marks})",
                chunk,
            ).fetchall()
        leased.sort()
        return leased


def _insert_rows(
    conn: sqlite3.Connection,
    table: str,
    columns: str,
    rows: list[tuple[Any, ...]],
    *,
    replace: bool = False,
) -> None:
    """Insert ``rows`` (one value per column) with multi-row ``VALUES`` statements.

    Chunks of power-of-two sizes keep the number of distinct statements (and so the
    connection's statement cache) small; one statement is one step, however many rows it has.
    """
    if not rows:
        return
    one = "(" + ", ".join("?" * len(rows[0])) + ")"
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    start = 0
    while start < len(rows):
        size = min(_MAX_ROWS_PER_INSERT, 1 << ((len(rows) - start).bit_length() - 1))
        part = rows[start : start + size]
        conn.execute(
            f"{verb} INTO {table} ({columns}) VALUES {', '.join([one] * size)}",
            list(itertools.chain.from_iterable(part)),
        )
        start += size
