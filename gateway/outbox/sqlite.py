"""The embedded outbox: one SQLite file in WAL mode, written through one group-commit thread.

Every write goes through a single writer thread that owns the write connection. It takes one
job, then every job already queued, and runs them all in one transaction (each inside its own
savepoint, so one failing job fails alone), committing -- and so fsyncing -- once. Concurrent
webhooks therefore share a commit. Reads use a separate connection (WAL lets them run beside
the writer). Several processes may share the file: SQLite's locks serialize their writers and
leases keep their forwarders from sending the same event twice while a lease holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import orjson

from gateway.config import OutboxConfig, resolve_secret
from gateway.outbox import (
    AcceptResult,
    DeadLetter,
    OutboxStats,
    OutboxUnavailable,
    StoredEvent,
)
from gateway.outbox.crypto import Cipher, CipherError
from gateway.webhook import Webhook

T = TypeVar("T")
FILE_NAME = "outbox.sqlite3"
_MAX_GROUP = 512
_PRUNE_EVERY = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL, provider TEXT NOT NULL, received_at REAL NOT NULL,
    headers BLOB NOT NULL, query BLOB NOT NULL, body BLOB NOT NULL,
    status TEXT NOT NULL, error TEXT, detail TEXT
);
CREATE INDEX IF NOT EXISTS webhooks_status ON webhooks (status, id);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id INTEGER NOT NULL, event_id TEXT, name TEXT NOT NULL,
    payload BLOB NOT NULL, size INTEGER NOT NULL,
    state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL, lease_until REAL,
    last_error TEXT, created_at REAL NOT NULL, delivered_at REAL
);
CREATE INDEX IF NOT EXISTS events_state_seq ON events (state, seq);
CREATE INDEX IF NOT EXISTS events_webhook ON events (webhook_id);
CREATE TABLE IF NOT EXISTS dedup (
    event_id TEXT PRIMARY KEY, first_seen REAL NOT NULL, seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS heartbeat (id INTEGER PRIMARY KEY, at REAL, pad BLOB);
"""


class _Job:
    __slots__ = ("fn", "future")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any]) -> None:
        self.fn = fn
        self.future: Future[Any] = Future()


def _unavailable(exc: BaseException) -> OutboxUnavailable:
    return OutboxUnavailable(f"{type(exc).__name__}: {exc}")


class SQLiteOutbox:
    """The :class:`gateway.outbox.Outbox` on a SQLite file."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durability: str = "power_loss",
        dedup_window: float = 86400.0,
        cipher: Cipher | None = None,
        clock: Callable[[], float] = time.time,
        max_pages: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.dedup_window = dedup_window
        self.cipher = cipher
        self.clock = clock
        self.commit_count = 0
        self.job_count = 0
        self._accepts = 0
        synchronous = "FULL" if durability == "power_loss" else "NORMAL"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._write = self._connect(synchronous, max_pages)
            self._write.executescript(_SCHEMA)
            self._read = self._connect(synchronous, None)
        except (sqlite3.Error, OSError) as exc:
            raise _unavailable(exc) from None
        self._read_lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._writer, name="outbox-writer", daemon=True)
        self._thread.start()

    @classmethod
    def open(
        cls,
        data_dir: str | os.PathLike[str],
        config: OutboxConfig,
        environ: Mapping[str, str] | None = None,
    ) -> SQLiteOutbox:
        """Open (creating) ``<data_dir>/outbox.sqlite3`` with the configured settings."""
        try:
            Path(data_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutboxUnavailable(f"cannot create data directory: {exc.strerror}") from None
        cipher = None
        if config.encryption_key:
            try:
                cipher = Cipher(resolve_secret(config.encryption_key, environ))
            except CipherError as exc:
                raise OutboxUnavailable(str(exc)) from None
        return cls(
            Path(data_dir) / FILE_NAME,
            durability=config.durability,
            dedup_window=config.dedup_window,
            cipher=cipher,
        )

    def _connect(self, synchronous: str, max_pages: int | None) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA busy_timeout=30000")
        if max_pages is not None:
            conn.execute(f"PRAGMA max_page_count={int(max_pages)}")
        return conn

    # -- the writer thread ---------------------------------------------------------------

    def _writer(self) -> None:
        conn = self._write
        while True:
            first = self._jobs.get()
            if first is None:
                return
            jobs = [first]
            while len(jobs) < _MAX_GROUP:
                try:
                    nxt = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._jobs.put(None)
                    break
                jobs.append(nxt)
            self._run_group(conn, jobs)

    def _run_group(self, conn: sqlite3.Connection, jobs: list[_Job]) -> None:
        results: list[tuple[_Job, Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in jobs:
                conn.execute("SAVEPOINT job")
                try:
                    value = job.fn(conn)
                except Exception as exc:
                    if not conn.in_transaction:
                        # SQLite rolled the whole transaction back (disk full, I/O error):
                        # every job of the group is lost, so every job fails.
                        raise (
                            exc
                            if isinstance(exc, sqlite3.Error)
                            else sqlite3.OperationalError(str(exc))
                        ) from exc
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    if isinstance(exc, sqlite3.Error):
                        exc = _unavailable(exc)
                    results.append((job, None, exc))
                else:
                    conn.execute("RELEASE job")
                    results.append((job, value, None))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            failure = _unavailable(exc)
            for job in jobs:
                job.future.set_exception(failure)
            return
        self.commit_count += 1
        self.job_count += len(jobs)
        for job, value, error in results:
            if error is None:
                job.future.set_result(value)
            else:
                job.future.set_exception(error)

    def _submit(self, fn: Callable[[sqlite3.Connection], T]) -> Future[T]:
        if self._closed:
            raise OutboxUnavailable("outbox is closed")
        job = _Job(fn)
        self._jobs.put(job)
        return job.future

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return self._submit(fn).result()

    def _read_query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._read_lock:
            try:
                return self._read.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise _unavailable(exc) from None

    # -- encoding -----------------------------------------------------------------------

    def _seal(self, data: bytes, column: str) -> bytes:
        return self.cipher.encrypt(data, column) if self.cipher else data

    def _open(self, blob: bytes, column: str) -> bytes:
        return self.cipher.decrypt(blob, column) if self.cipher else blob

    # -- receive side -------------------------------------------------------------------

    def _insert_webhook(
        self,
        conn: sqlite3.Connection,
        webhook: Webhook,
        status: str,
        error: str | None = None,
        detail: str | None = None,
    ) -> int:
        cur = conn.execute(
            "INSERT INTO webhooks (source, provider, received_at, headers, query, body, status,"
            " error, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                webhook.source,
                webhook.provider,
                webhook.received_at,
                self._seal(orjson.dumps(dict(webhook.headers)), "headers"),
                orjson.dumps(dict(webhook.query)),
                self._seal(webhook.body, "body"),
                status,
                error,
                detail,
            ),
        )
        return int(cur.lastrowid or 0)

    def _insert_events(
        self,
        conn: sqlite3.Connection,
        webhook_id: int,
        events: Sequence[bytes],
        event_ids: Sequence[str | None],
        names: Sequence[str],
    ) -> tuple[int, int]:
        now = self.clock()
        stored = duplicates = 0
        for payload, event_id, name in zip(events, event_ids, names, strict=True):
            if event_id is not None and self.dedup_window > 0:
                row = conn.execute(
                    "SELECT d.first_seen, e.state FROM dedup d LEFT JOIN events e ON e.seq = d.seq"
                    " WHERE d.event_id = ?",
                    (event_id,),
                ).fetchone()
                if row is not None and row[0] > now - self.dedup_window and row[1] != "dead":
                    duplicates += 1
                    continue
            cur = conn.execute(
                "INSERT INTO events (webhook_id, event_id, name, payload, size, state,"
                " next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
                (
                    webhook_id,
                    event_id,
                    name,
                    self._seal(payload, "payload"),
                    len(payload),
                    now,
                    now,
                ),
            )
            if event_id is not None and self.dedup_window > 0:
                conn.execute(
                    "INSERT OR REPLACE INTO dedup (event_id, first_seen, seq) VALUES (?, ?, ?)",
                    (event_id, now, cur.lastrowid),
                )
            stored += 1
        self._accepts += 1
        if self._accepts % _PRUNE_EVERY == 0 and self.dedup_window > 0:
            conn.execute("DELETE FROM dedup WHERE first_seen < ?", (now - self.dedup_window,))
        return stored, duplicates

    def _accept_job(
        self,
        webhook: Webhook,
        events: Sequence[bytes],
        event_ids: Sequence[str | None],
        names: Sequence[str],
    ) -> Callable[[sqlite3.Connection], AcceptResult]:
        if not len(events) == len(event_ids) == len(names):
            raise ValueError("events, event_ids and names must have the same length")
        payloads, ids, labels = list(events), list(event_ids), list(names)

        def job(conn: sqlite3.Connection) -> AcceptResult:
            webhook_id = self._insert_webhook(conn, webhook, "accepted")
            stored, duplicates = self._insert_events(conn, webhook_id, payloads, ids, labels)
            return AcceptResult(webhook_id, stored, duplicates)

        return job

    def accept(
        self,
        webhook: Webhook,
        events: Sequence[bytes],
        event_ids: Sequence[str | None],
        names: Sequence[str],
    ) -> AcceptResult:
        return self._call(self._accept_job(webhook, events, event_ids, names))

    async def accept_async(
        self,
        webhook: Webhook,
        events: Sequence[bytes],
        event_ids: Sequence[str | None],
        names: Sequence[str],
    ) -> AcceptResult:
        future = self._submit(self._accept_job(webhook, events, event_ids, names))
        return await asyncio.wrap_future(future)

    def _quarantine_job(
        self, webhook: Webhook, error: str, detail: str
    ) -> Callable[[sqlite3.Connection], int]:
        return lambda conn: self._insert_webhook(conn, webhook, "quarantined", error, detail)

    def quarantine(self, webhook: Webhook, error: str, detail: str) -> int:
        return self._call(self._quarantine_job(webhook, error, detail))

    async def quarantine_async(self, webhook: Webhook, error: str, detail: str) -> int:
        return await asyncio.wrap_future(self._submit(self._quarantine_job(webhook, error, detail)))

    # -- forwarder side -----------------------------------------------------------------

    def claim(
        self, *, max_events: int, max_bytes: int, lease_seconds: float, now: float | None = None
    ) -> list[StoredEvent]:
        at = self.clock() if now is None else now

        def job(conn: sqlite3.Connection) -> list[StoredEvent]:
            due = conn.execute(
                "SELECT seq, webhook_id, size FROM events WHERE state = 'pending'"
                " AND next_attempt_at <= ? ORDER BY seq LIMIT ?",
                (at, max_events + 1),
            ).fetchall()
            expired = conn.execute(
                "SELECT seq, webhook_id, size FROM events WHERE state = 'leased'"
                " AND lease_until < ? ORDER BY seq LIMIT ?",
                (at, max_events + 1),
            ).fetchall()
            rows = sorted(due + expired)[: max_events + 1]
            chosen: list[int] = []
            total = 0
            for seq, _, size in rows:
                if chosen and (total + size > max_bytes or len(chosen) == max_events):
                    break
                chosen.append(seq)
                total += size
            if len(chosen) < len(rows) and len(chosen) > 1:
                # keep a webhook's events in one batch: cut at the last webhook boundary
                by_seq = {seq: wid for seq, wid, _ in rows}
                cut_webhook = by_seq[rows[len(chosen)][0]]
                trimmed = [s for s in chosen if by_seq[s] != cut_webhook]
                if trimmed:
                    chosen = trimmed
            if not chosen:
                return []
            marks = ",".join("?" * len(chosen))
            conn.execute(
                f"UPDATE events SET state = 'leased', lease_until = ? WHERE seq IN ({marks})",
                (at + lease_seconds, *chosen),
            )
            fetched = conn.execute(
                "SELECT seq, webhook_id, event_id, name, payload, attempts, created_at FROM events"
                f" WHERE seq IN ({marks}) ORDER BY seq",
                chosen,
            ).fetchall()
            return [
                StoredEvent(seq, wid, eid, name, self._open(payload, "payload"), attempts, created)
                for seq, wid, eid, name, payload, attempts, created in fetched
            ]

        return self._call(job)

    def _update(self, sql: str, seqs: Sequence[int], *args: Any) -> int:
        ids = list(seqs)
        if not ids:
            return 0

        def job(conn: sqlite3.Connection) -> int:
            count = 0
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                count += conn.execute(sql.format(marks=marks), (*args, *chunk)).rowcount
            return count

        return self._call(job)

    def ack(self, seqs: Sequence[int]) -> None:
        self._update(
            "UPDATE events SET state = 'delivered', delivered_at = ?, lease_until = NULL"
            " WHERE seq IN ({marks})",
            seqs,
            self.clock(),
        )

    def release(self, seqs: Sequence[int], *, retry_at: float, error: str) -> None:
        self._update(
            "UPDATE events SET state = 'pending', attempts = attempts + 1,"
            " next_attempt_at = ?, last_error = ?, lease_until = NULL"
            " WHERE seq IN ({marks})",
            seqs,
            retry_at,
            error,
        )

    def unlease(self, seqs: Sequence[int]) -> None:
        """Give leased events back without counting an attempt (shutdown before sending)."""
        self._update(
            "UPDATE events SET state = 'pending', lease_until = NULL"
            " WHERE state = 'leased' AND seq IN ({marks})",
            seqs,
        )

    def dead_letter(self, seq: int, error: str) -> None:
        self._update(
            "UPDATE events SET state = 'dead', attempts = attempts + 1, last_error = ?,"
            " lease_until = NULL WHERE seq IN ({marks})",
            [seq],
            error,
        )

    def retry_dead(self, seqs: Sequence[int] | None = None) -> int:
        now = self.clock()
        if seqs is None:
            return self._call(
                lambda conn: (
                    conn.execute(
                        "UPDATE events SET state = 'pending', next_attempt_at = ?"
                        " WHERE state = 'dead'",
                        (now,),
                    ).rowcount
                )
            )
        return self._update(
            "UPDATE events SET state = 'pending', next_attempt_at = ?"
            " WHERE state = 'dead' AND seq IN ({marks})",
            seqs,
            now,
        )

    # -- inspection ---------------------------------------------------------------------

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        events = self._read_query(
            "SELECT e.seq, w.source, e.name, e.last_error, e.created_at, e.attempts"
            " FROM events e JOIN webhooks w ON w.id = e.webhook_id WHERE e.state = 'dead'"
            " ORDER BY e.seq DESC LIMIT ?",
            (limit,),
        )
        held = self._read_query(
            "SELECT id, source, error, received_at FROM webhooks WHERE status = 'quarantined'"
            " ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        letters = [
            DeadLetter(seq, "event", src, name, err or "", created, attempts)
            for seq, src, name, err, created, attempts in events
        ]
        letters += [
            DeadLetter(wid, "webhook", src, None, err or "", at, 0) for wid, src, err, at in held
        ]
        return sorted(letters, key=lambda d: d.created_at, reverse=True)[:limit]

    def _webhook_from_row(self, row: Sequence[Any]) -> Webhook:
        _, source, provider, received_at, headers, query, body = row[:7]
        return Webhook(
            source=source,
            provider=provider,
            body=self._open(body, "body"),
            headers=orjson.loads(self._open(headers, "headers")),
            query=orjson.loads(query),
            received_at=received_at,
        )

    def quarantined(self, limit: int = 100) -> list[tuple[int, Webhook, str]]:
        rows = self._read_query(
            "SELECT id, source, provider, received_at, headers, query, body, error FROM webhooks"
            " WHERE status = 'quarantined' ORDER BY id LIMIT ?",
            (limit,),
        )
        return [(row[0], self._webhook_from_row(row), row[7] or "") for row in rows]

    def resolve_quarantined(
        self,
        webhook_id: int,
        events: Sequence[bytes],
        event_ids: Sequence[str | None],
        names: Sequence[str],
    ) -> AcceptResult:
        payloads, ids, labels = list(events), list(event_ids), list(names)

        def job(conn: sqlite3.Connection) -> AcceptResult:
            changed = conn.execute(
                "UPDATE webhooks SET status = 'resolved' WHERE id = ? AND status = 'quarantined'",
                (webhook_id,),
            ).rowcount
            if not changed:
                raise KeyError(f"webhook {webhook_id} is not quarantined")
            stored, duplicates = self._insert_events(conn, webhook_id, payloads, ids, labels)
            return AcceptResult(webhook_id, stored, duplicates)

        return self._call(job)

    def stats(self, now: float | None = None) -> OutboxStats:
        at = self.clock() if now is None else now
        counts = dict(
            self._read_query(
                "SELECT CASE WHEN state = 'pending' AND attempts > 0 THEN 'retrying'"
                " ELSE state END,"
                " COUNT(*) FROM events GROUP BY 1"
            )
        )
        oldest = self._read_query(
            "SELECT MIN(created_at) FROM events WHERE state IN ('pending', 'leased')"
        )[0][0]
        quarantined = self._read_query(
            "SELECT COUNT(*) FROM webhooks WHERE status = 'quarantined'"
        )[0][0]
        return OutboxStats(
            pending=counts.get("pending", 0),
            retrying=counts.get("retrying", 0),
            leased=counts.get("leased", 0),
            dead=counts.get("dead", 0),
            quarantined=quarantined,
            delivered=counts.get("delivered", 0),
            oldest_pending_age=max(0.0, at - oldest) if oldest is not None else 0.0,
        )

    def prune(self, older_than: float) -> int:
        """Delete delivered events delivered before ``older_than`` and webhooks left empty."""

        def job(conn: sqlite3.Connection) -> int:
            gone = conn.execute(
                "DELETE FROM events WHERE state = 'delivered' AND delivered_at < ?", (older_than,)
            ).rowcount
            gone += conn.execute(
                "DELETE FROM webhooks WHERE status != 'quarantined' AND received_at < ? AND"
                " NOT EXISTS (SELECT 1 FROM events e WHERE e.webhook_id = webhooks.id)",
                (older_than,),
            ).rowcount
            return gone

        return self._call(job)

    def purge(self) -> int:
        def job(conn: sqlite3.Connection) -> int:
            gone = conn.execute("DELETE FROM events WHERE state IN ('delivered', 'dead')").rowcount
            gone += conn.execute(
                "DELETE FROM webhooks WHERE status = 'quarantined' OR NOT EXISTS"
                " (SELECT 1 FROM events e WHERE e.webhook_id = webhooks.id)"
            ).rowcount
            return gone

        return self._call(job)

    def check_writable(self) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO heartbeat (id, at, pad) VALUES (1, ?, ?)",
                (self.clock(), os.urandom(8192)),
            )

        self._call(job)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        self._thread.join()
        for conn in (self._write, self._read):
            conn.close()
