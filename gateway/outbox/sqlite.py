"""The embedded outbox: one SQLite file in WAL mode, written through one group-commit thread.

Every write goes through a single writer thread that owns the write connection. It takes one
job, then every job already queued, and runs them all in one ``BEGIN IMMEDIATE`` transaction,
each inside its own savepoint so a failing job rolls back alone and gets its own exception.
One ``COMMIT`` (one fsync with ``durability="power_loss"``) then resolves every job's future:
concurrent webhooks share a commit. Reads use a second connection, which WAL lets run beside
the writer. Several processes on one host may share the file: SQLite's lock serializes their
write transactions and leases keep their forwarders from holding the same event at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import math
import os
import queue
import random
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

import orjson

from gateway.config import OutboxConfig, resolve_secret
from gateway.outbox import (
    ENTRY_STATES,
    AcceptResult,
    ActivityBucket,
    Attempt,
    DeadLetter,
    EventRecord,
    OutboxEntry,
    OutboxStats,
    OutboxUnavailable,
    Rejection,
    SourceCounts,
    StoredEvent,
    WebhookRecord,
    WebhookSummary,
)
from gateway.outbox.crypto import Cipher, CipherError
from gateway.webhook import Webhook

T = TypeVar("T")
Durability = Literal["power_loss", "process_crash"]

FILE_NAME = "outbox.sqlite3"
SCHEMA_VERSION = 2  # 2: event payloads in their own table
_SYNCHRONOUS: dict[str, str] = {"power_loss": "FULL", "process_crash": "NORMAL"}
_MAX_GROUP = 512  # jobs per transaction: bounds how long one commit holds the write lock
_DEDUP_PRUNE_EVERY = 1000  # accepts between sweeps of expired dedup entries
# the ``sealed`` column holds flags: how the row's blobs are stored (0: as received)
_ENCRYPTED = 1
_COMPRESSED = 2  # zlib, before encryption
_ZLIB_LEVEL = 1  # webhook JSON shrinks 3x (2 KB) to 14x (20 KB)
# Smaller blobs are stored as they are: each zlib call releases the GIL, and on a busy core the
# hand-over to the writer thread and back cost more than the saved bytes (bench/README.md).
_COMPRESS_MIN_BYTES = 4096
_MAX_ROWS_PER_INSERT = 256  # rows per multi-row INSERT: 256 x 11 values, far below SQLite's cap
_PRUNE_CHUNK = 5000  # rows per prune transaction, so accepts interleave with a long prune
_CHUNK = 500  # ids per ``IN (...)`` list
_REJECTION_BUFFER = 10000  # refused requests waiting for a write; older ones are dropped
#: retry rows kept per event: a days-long outage must not grow the history without bound
MAX_RETRY_HISTORY = 20

# Partial indexes keep each state's rows in their own small index: the claim, stats and
# prune queries touch only the rows of the state they ask for, however many delivered rows
# the retention period keeps around.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS webhooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    provider TEXT NOT NULL,
    received_at REAL NOT NULL,
    headers BLOB NOT NULL,
    query BLOB NOT NULL,
    body BLOB NOT NULL,
    sealed INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('accepted', 'quarantined', 'resolved')),
    error TEXT,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS webhooks_quarantined ON webhooks (id) WHERE status = 'quarantined';
CREATE INDEX IF NOT EXISTS webhooks_received ON webhooks (received_at)
    WHERE status <> 'quarantined';
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id INTEGER NOT NULL,
    event_id TEXT,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    sealed INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'leased', 'delivered', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    lease_until REAL,
    last_error TEXT,
    created_at REAL NOT NULL,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS events_pending ON events (seq, next_attempt_at, attempts)
    WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS events_retry ON events (next_attempt_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS events_leased ON events (lease_until) WHERE state = 'leased';
CREATE INDEX IF NOT EXISTS events_dead ON events (seq) WHERE state = 'dead';
CREATE INDEX IF NOT EXISTS events_delivered ON events (delivered_at) WHERE state = 'delivered';
CREATE INDEX IF NOT EXISTS events_webhook ON events (webhook_id);
-- Payloads live apart from the rows whose state changes: leasing and delivering an event then
-- rewrites a small row (dozens share a page) instead of one holding a kilobytes-long payload.
CREATE TABLE IF NOT EXISTS event_payloads (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL);
CREATE TRIGGER IF NOT EXISTS event_payloads_follow AFTER DELETE ON events
BEGIN
    DELETE FROM event_payloads WHERE seq = old.seq;
END;
CREATE TABLE IF NOT EXISTS dedup (
    event_id TEXT PRIMARY KEY,
    first_seen REAL NOT NULL,
    seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_first_seen ON dedup (first_seen);
CREATE TABLE IF NOT EXISTS encryption_keys (
    key_id BLOB PRIMARY KEY,
    first_used REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    at REAL NOT NULL,
    outcome TEXT NOT NULL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS attempts_seq ON attempts (seq);
CREATE TABLE IF NOT EXISTS rejections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    provider TEXT NOT NULL,
    received_at REAL NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    headers BLOB NOT NULL,
    body BLOB NOT NULL,
    body_size INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    sealed INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS rejections_received ON rejections (received_at);
CREATE TABLE IF NOT EXISTS heartbeat (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at REAL NOT NULL,
    pid INTEGER NOT NULL,
    pad BLOB NOT NULL
);
"""

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
# The oldest waiting event is taken as the lowest seq: seqs grow with acceptance time, and an
# index lookup beats a scan of a large backlog at every metrics scrape.
_STATS = """
SELECT
    (SELECT COUNT(*) FROM events INDEXED BY events_pending
        WHERE state = 'pending' AND attempts = 0),
    (SELECT COUNT(*) FROM events INDEXED BY events_pending
        WHERE state = 'pending' AND attempts > 0),
    (SELECT COUNT(*) FROM events WHERE state = 'leased'),
    (SELECT COUNT(*) FROM events WHERE state = 'dead'),
    (SELECT COUNT(*) FROM webhooks WHERE status = 'quarantined'),
    (SELECT COUNT(*) FROM events WHERE state = 'delivered'),
    (SELECT MIN(created_at) FROM events WHERE seq IN (
        (SELECT MIN(seq) FROM events WHERE state = 'pending'),
        (SELECT MIN(seq) FROM events INDEXED BY events_leased WHERE state = 'leased')))
"""
_WEBHOOK_COLUMNS = "id, source, provider, received_at, headers, query, body, sealed"
# One row per stored webhook with what became of its events (see WebhookSummary.outcome).
_SUMMARIES = """
SELECT * FROM (
    SELECT w.id, w.source, w.provider, w.received_at, w.status, w.error,
        (SELECT COUNT(*) FROM events e WHERE e.webhook_id = w.id) AS n,
        (SELECT group_concat(name, char(10)) FROM
            (SELECT name FROM events e WHERE e.webhook_id = w.id ORDER BY seq)) AS names,
        CASE
            WHEN w.status = 'quarantined' THEN 'quarantined'
            WHEN EXISTS (SELECT 1 FROM events e WHERE e.webhook_id = w.id AND e.state = 'dead')
                THEN 'dead'
            WHEN EXISTS (SELECT 1 FROM events e WHERE e.webhook_id = w.id
                AND e.state IN ('pending', 'leased')) THEN 'pending'
            WHEN EXISTS (SELECT 1 FROM events e WHERE e.webhook_id = w.id) THEN 'delivered'
            ELSE 'filtered'
        END AS outcome
    FROM webhooks w
    WHERE (:source IS NULL OR w.source = :source) AND (:id IS NULL OR w.id = :id) AND (
        :like IS NULL OR :id IS NOT NULL OR w.error LIKE :like ESCAPE '\\' OR EXISTS (
            SELECT 1 FROM events x WHERE x.webhook_id = w.id
            AND (x.event_id LIKE :like ESCAPE '\\' OR x.name LIKE :like ESCAPE '\\')))
)
WHERE :outcome IS NULL OR outcome = :outcome
ORDER BY id DESC LIMIT :limit
"""
_REJECTION_COLUMNS = (
    "id, source, provider, received_at, status, reason, message, headers, body, body_size,"
    " request_id, sealed"
)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# ``outbox list``: each state's rows through that state's partial index
_ENTRY_WHERE = {
    "pending": "e.state = 'pending' AND e.attempts = 0",
    "retrying": "e.state = 'pending' AND e.attempts > 0",
    "leased": "e.state = 'leased'",
    "dead": "e.state = 'dead'",
    "delivered": "e.state = 'delivered'",
}


class _Job:
    """A write for the writer thread, awaited through a ``concurrent.futures.Future``."""

    __slots__ = ("fn", "future")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any]) -> None:
        self.fn = fn
        self.future: Future[Any] = Future()

    def start(self) -> bool:
        """False when the caller already gave up (the job is then not run)."""
        return self.future.set_running_or_notify_cancel()


class _AsyncJob:
    """A write awaited on an event loop: its asyncio future is settled from the loop thread.

    The writer hands every outcome of one commit for one loop over in one
    ``call_soon_threadsafe``, so concurrent webhooks share one wake-up of the loop as they share
    one commit (and no ``concurrent.futures.Future``, with its lock and condition, is made).
    """

    __slots__ = ("fn", "loop", "waiter")

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], Any],
        loop: asyncio.AbstractEventLoop,
        waiter: asyncio.Future[Any],
    ) -> None:
        self.fn = fn
        self.loop = loop
        self.waiter = waiter

    def start(self) -> bool:
        # read from the writer thread: a request cancelled before its write began is dropped
        return not self.waiter.cancelled()


class _Batchable:
    """A job function that can also run together with others of its class.

    The writer runs a run of consecutive jobs of one such class with one :meth:`run_many`
    call: a few statements for the whole run instead of several per job. ``run_many`` must
    give each job the value that calling it alone would have.
    """

    def __call__(self, conn: sqlite3.Connection) -> Any:
        return self.run_many(conn, [self])[0]

    def run_many(self, conn: sqlite3.Connection, calls: Sequence[Any]) -> list[Any]:
        raise NotImplementedError


class _AcceptCall(_Batchable):
    """Store one webhook and its events: the receive path's write."""

    __slots__ = ("body_key", "event_ids", "names", "outbox", "payloads", "row", "sizes")

    def __init__(
        self,
        outbox: SQLiteOutbox,
        row: tuple[Any, ...],
        payloads: list[tuple[bytes, int]],
        sizes: list[int],
        event_ids: list[str | None],
        names: list[str],
        body_key: str | None = None,
    ) -> None:
        self.body_key = body_key  # a verified body's digest: see Outbox.accept
        self.outbox = outbox
        self.row = row  # the webhooks row's columns after its id
        self.payloads = payloads  # as stored (compressed, encrypted), with each row's flags
        self.sizes = sizes  # of the plain payloads
        self.event_ids = event_ids
        self.names = names

    def run_many(self, conn: sqlite3.Connection, calls: Sequence[Any]) -> list[AcceptResult]:
        return self.outbox._accept_many(conn, calls)


_AnyJob = _Job | _AsyncJob
_Outcome = tuple[_AnyJob, Any, BaseException | None]


def _settle(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for waiter, value, error in outcomes:
        if waiter.done():  # cancelled meanwhile: the write stands, nobody waits for it
            continue
        if error is None:
            waiter.set_result(value)
        else:
            waiter.set_exception(error)


def _hand_to_loops(outcomes: list[_Outcome]) -> None:
    """Settle async jobs' futures: one ``call_soon_threadsafe`` per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
    for job, value, error in outcomes:
        assert isinstance(job, _AsyncJob)
        by_loop.setdefault(job.loop, []).append((job.waiter, value, error))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(_settle, settled)


class _GroupLost(Exception):
    """SQLite rolled back the whole transaction (disk full, I/O error): every job failed."""


def _unavailable(exc: BaseException) -> OutboxUnavailable:
    cause = exc.__cause__ if isinstance(exc, _GroupLost) and exc.__cause__ else exc
    return OutboxUnavailable(f"{type(cause).__name__}: {cause}")


def _as_job_error(exc: Exception) -> Exception:
    return _unavailable(exc) if isinstance(exc, sqlite3.Error) else exc


def _chunks(ids: Sequence[int]) -> list[list[int]]:
    items = list(ids)
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]


def _marks(ids: Sequence[object]) -> str:
    return ",".join("?" * len(ids))


class _GroupCommitWriter:
    """A thread that owns one connection and runs queued jobs, many per transaction.

    It takes one job, then every job already queued (up to ``_MAX_GROUP``), and runs them in
    one ``BEGIN IMMEDIATE`` transaction, each in its own savepoint: a job that raises rolls
    back alone and gets its own exception. After the one ``COMMIT`` every future is resolved.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        before_commit: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        self.conn = conn
        self.before_commit = before_commit
        #: whether ``before_commit`` has anything to write (no savepoint for nothing)
        self.before_commit_due: Callable[[], bool] = lambda: True
        #: called with each transaction's duration in seconds, BEGIN to COMMIT (the fsync too)
        self.on_commit: Callable[[float], None] | None = None
        self.commit_count = 0
        self.job_count = 0
        self.closed = False
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_AnyJob | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="outbox-writer", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> Future[T]:
        job = _Job(fn)
        self._put(job)
        return job.future

    def submit_async(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue ``fn``; its outcome settles the returned future on the running loop."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[T] = loop.create_future()
        self._put(_AsyncJob(fn, loop, waiter))
        return waiter

    def _put(self, job: _AnyJob) -> None:
        with self._lock:
            if self.closed:
                raise OutboxUnavailable("the outbox is closed")
            self._jobs.put(job)

    def close(self) -> None:
        """Run every job already queued, stop the thread and close the connection."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._jobs.put(None)
        self._thread.join()
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._jobs.get()
            if first is None:
                return
            group: list[_AnyJob] = [first]
            while len(group) < _MAX_GROUP:
                try:
                    nxt = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                group.append(nxt)
            # a job whose caller gave up (a cancelled request) is dropped, not written
            live = [job for job in group if job.start()]
            if live:
                self._run(live)

    def _run(self, jobs: list[_AnyJob]) -> None:
        conn = self.conn
        outcomes: list[_Outcome] = []
        started = time.perf_counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
            i = 0
            while i < len(jobs):
                fn = jobs[i].fn
                if isinstance(fn, _Batchable):
                    j = i + 1
                    while j < len(jobs) and type(jobs[j].fn) is type(fn):
                        j += 1
                    outcomes += self._run_batch(conn, jobs[i:j])
                    i = j
                else:
                    outcomes.append(self._run_one(conn, jobs[i]))
                    i += 1
            if self.before_commit is not None and self.before_commit_due():
                self._piggyback(conn, self.before_commit)
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            failed: list[_Outcome] = [(job, None, _unavailable(exc)) for job in jobs]
            self._resolve(failed)
            if not isinstance(exc, Exception):
                raise
            return
        self.commit_count += 1
        self.job_count += len(jobs)
        self._resolve(outcomes)
        if self.on_commit is not None:
            with contextlib.suppress(Exception):  # a metric must never fail a write
                self.on_commit(time.perf_counter() - started)

    @staticmethod
    def _run_one(conn: sqlite3.Connection, job: _AnyJob) -> _Outcome:
        """One job in its own savepoint: its failure rolls back only its own writes."""
        conn.execute("SAVEPOINT job")
        try:
            value = job.fn(conn)
        except Exception as exc:
            if not conn.in_transaction:
                raise _GroupLost() from exc
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            return (job, None, _as_job_error(exc))
        conn.execute("RELEASE job")
        return (job, value, None)

    @classmethod
    def _run_batch(cls, conn: sqlite3.Connection, jobs: list[_AnyJob]) -> list[_Outcome]:
        """Jobs of one batchable kind in a few statements; one by one if the batch fails."""
        if len(jobs) == 1:
            return [cls._run_one(conn, jobs[0])]
        first = jobs[0].fn
        assert isinstance(first, _Batchable)
        conn.execute("SAVEPOINT batch")
        try:
            values = first.run_many(conn, [job.fn for job in jobs])
        except Exception as exc:
            if not conn.in_transaction:
                raise _GroupLost() from exc
            conn.execute("ROLLBACK TO batch")
            conn.execute("RELEASE batch")
            return [cls._run_one(conn, job) for job in jobs]  # find the job that fails
        conn.execute("RELEASE batch")
        return [(job, value, None) for job, value in zip(jobs, values, strict=True)]

    @staticmethod
    def _piggyback(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], None]) -> None:
        """Run ``fn`` in the group's transaction; its failure never fails the group's jobs."""
        conn.execute("SAVEPOINT extra")
        try:
            fn(conn)
        except Exception as exc:
            if not conn.in_transaction:
                raise _GroupLost() from exc
            conn.execute("ROLLBACK TO extra")
        conn.execute("RELEASE extra")

    @staticmethod
    def _resolve(outcomes: list[_Outcome]) -> None:
        waiting_loops: list[_Outcome] = []
        for outcome in outcomes:
            job, value, error = outcome
            if isinstance(job, _AsyncJob):
                waiting_loops.append(outcome)
            elif error is None:
                job.future.set_result(value)
            else:
                job.future.set_exception(error)
        if waiting_loops:
            _hand_to_loops(waiting_loops)


class SQLiteOutbox:
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
        if durability not in _SYNCHRONOUS:
            raise ValueError(f"durability must be power_loss or process_crash, not {durability!r}")
        self.path = Path(path)
        self.durability = durability
        self.dedup_window = dedup_window
        self.cipher = cipher
        self.compress = compress
        self.clock = clock
        self._accepts = 0
        self._busy_timeout = busy_timeout
        self._rejected: collections.deque[Rejection] = collections.deque(maxlen=_REJECTION_BUFFER)
        self._recorded = self._flushed = 0  # rejections recorded / known to be committed
        write, self._read = self._open_retrying(max_pages)
        self._read_lock = threading.Lock()
        self._writer = _GroupCommitWriter(write, before_commit=self._write_rejections)
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

    def __enter__(self) -> SQLiteOutbox:
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
        """Jobs (accepts, claims, acks ...) those transactions carried."""
        return self._writer.job_count

    # -- receive side -------------------------------------------------------------------

    def accept(
        self,
        webhook: Webhook,
        events: Sequence[bytes],
        event_ids: Sequence[str | None],
        names: Sequence[str],
        *,
        body_key: str | None = None,
    ) -> AcceptResult:
        """Store a webhook and its events in one transaction; see :class:`Outbox`."""
        return self._call(self._accept_job(webhook, events, event_ids, names, body_key))

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
        return await self._writer.submit_async(job)

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
        payloads, ids, labels = self._checked(events, event_ids, names)
        sealed = [self._seal_payload(payload) for payload in payloads]

        def job(conn: sqlite3.Connection) -> AcceptResult:
            changed = conn.execute(
                "UPDATE webhooks SET status = 'resolved' WHERE id = ? AND status = 'quarantined'",
                (webhook_id,),
            ).rowcount
            if not changed:
                raise KeyError(f"webhook {webhook_id} is not quarantined")
            batch = (webhook_id, sealed, [len(p) for p in payloads], ids, labels)
            return AcceptResult(webhook_id, *self._store_events(conn, [batch])[0])

        return self._call(job)

    # -- forwarder side -----------------------------------------------------------------

    def claim(
        self, *, max_events: int, max_bytes: int, lease_seconds: float, now: float | None = None
    ) -> list[StoredEvent]:
        """Lease due events in ``seq`` order (expired leases count as due); see :class:`Outbox`."""
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        at = self.clock() if now is None else now
        return self._call(lambda conn: self._claim(conn, at, max_events, max_bytes, lease_seconds))

    def ack(self, seqs: Sequence[int]) -> None:
        """Mark events delivered (also after their lease expired: they were delivered)."""
        # The delivery is history too, read from delivered_at (see _with_delivery): an attempts
        # row per delivered event would cost every event two more B-tree writes.
        self._update(
            "UPDATE events SET state = 'delivered', delivered_at = ?, lease_until = NULL"
            " WHERE state IN ('leased', 'pending') AND seq IN ({marks})",
            seqs,
            self.clock(),
        )

    def release(self, seqs: Sequence[int], *, retry_at: float, error: str) -> None:
        """Return leased events for a retry at ``retry_at``, counting an attempt."""
        self._update(
            "UPDATE events SET state = 'pending', attempts = attempts + 1, next_attempt_at = ?,"
            " last_error = ?, lease_until = NULL WHERE state = 'leased' AND seq IN ({marks})"
            " RETURNING seq",
            seqs,
            retry_at,
            error,
            history=("retry", self.clock(), error),
        )

    def unlease(self, seqs: Sequence[int]) -> None:
        """Give leased events back without counting an attempt (shutdown before sending)."""
        self._update(
            "UPDATE events SET state = 'pending', lease_until = NULL"
            " WHERE state = 'leased' AND seq IN ({marks})",
            seqs,
        )

    def dead_letter(self, seq: int, error: str) -> None:
        """Dead-letter an event that is not yet delivered; the failed attempt counts."""
        self._update(
            "UPDATE events SET state = 'dead', attempts = attempts + 1, last_error = ?,"
            " lease_until = NULL WHERE state IN ('leased', 'pending') AND seq IN ({marks})"
            " RETURNING seq",
            [seq],
            error,
            history=("dead", self.clock(), error),
        )

    def retry_dead(self, seqs: Sequence[int] | None = None) -> int:
        """Make dead events pending and due now, keeping their attempt count."""
        now = self.clock()
        history = ("requeued", now, None)
        if seqs is None:

            def job(conn: sqlite3.Connection) -> int:
                rows = conn.execute(
                    "UPDATE events SET state = 'pending', next_attempt_at = ?"
                    " WHERE state = 'dead' RETURNING seq",
                    (now,),
                ).fetchall()
                self._record_attempts(conn, [r[0] for r in rows], history)
                return len(rows)

            return self._call(job)
        return self._update(
            "UPDATE events SET state = 'pending', next_attempt_at = ?"
            " WHERE state = 'dead' AND seq IN ({marks}) RETURNING seq",
            seqs,
            now,
            history=history,
        )

    @staticmethod
    def _record_attempts(
        conn: sqlite3.Connection, seqs: Sequence[int], history: tuple[str, float, str | None]
    ) -> None:
        outcome, at, error = history
        conn.executemany(
            "INSERT INTO attempts (seq, at, outcome, error) VALUES (?, ?, ?, ?)",
            [(seq, at, outcome, error) for seq in seqs],
        )
        if outcome != "retry":
            return
        # Past the cap, each new retry row replaces the oldest one (the count stays in events).
        for start in range(0, len(seqs), _CHUNK):
            part = list(seqs[start : start + _CHUNK])
            conn.execute(
                "DELETE FROM attempts WHERE id IN (SELECT (SELECT MIN(a.id) FROM attempts a"
                " WHERE a.seq = e.seq AND a.outcome = 'retry') FROM events e"
                f" WHERE e.seq IN ({_marks(part)}) AND e.attempts > ?)",
                [*part, MAX_RETRY_HISTORY],
            )

    # -- inspection ---------------------------------------------------------------------

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Dead events and quarantined webhooks, newest first."""
        events = self._read_query(
            "SELECT e.seq, w.source, e.name, e.last_error, e.created_at, e.attempts"
            " FROM events e LEFT JOIN webhooks w ON w.id = e.webhook_id"
            " WHERE e.state = 'dead' ORDER BY e.seq DESC LIMIT ?",
            (limit,),
        )
        held = self._read_query(
            "SELECT id, source, error, received_at FROM webhooks WHERE status = 'quarantined'"
            " ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        letters = [
            DeadLetter(seq, "event", source or "", name, error or "", created, attempts)
            for seq, source, name, error, created, attempts in events
        ]
        letters += [
            DeadLetter(wid, "webhook", source, None, error or "", at, 0)
            for wid, source, error, at in held
        ]
        letters.sort(key=lambda d: d.created_at, reverse=True)
        return letters[:limit]

    def quarantined(self, limit: int = 100) -> list[tuple[int, Webhook, str]]:
        """Quarantined webhooks, rebuilt (and decrypted), oldest first."""
        rows = self._read_query(
            f"SELECT {_WEBHOOK_COLUMNS}, error FROM webhooks WHERE status = 'quarantined'"
            " ORDER BY id LIMIT ?",
            (limit,),
        )
        return [(row[0], self._webhook_from_row(row), row[8] or "") for row in rows]

    def stats(self, now: float | None = None) -> OutboxStats:
        """Counts by state; the oldest age runs over pending, retrying and leased events."""
        at = self.clock() if now is None else now
        pending, retrying, leased, dead, quarantined, delivered, oldest = self._read_query(_STATS)[
            0
        ]
        return OutboxStats(
            pending=pending,
            retrying=retrying,
            leased=leased,
            dead=dead,
            quarantined=quarantined,
            delivered=delivered,
            oldest_pending_age=max(0.0, at - oldest) if oldest is not None else 0.0,
        )

    # -- inspection console -------------------------------------------------------------

    def record_rejection(self, rejection: Rejection) -> None:
        """Buffer a refused request; it rides along with the next transaction's commit."""
        self._rejected.append(rejection)
        self._recorded += 1

    def flush_rejections(self) -> None:
        """Commit buffered rejections now (a no-op when nothing was recorded since the last).

        The writer runs one group at a time, so once this no-op job's group has committed, so
        has any group that took rejections from the buffer before it.
        """
        target = self._recorded
        if target > self._flushed:
            self._call(lambda conn: None)
            self._flushed = max(self._flushed, target)

    def _write_rejections(self, conn: sqlite3.Connection) -> None:
        """The writer's pre-commit hook: insert every buffered rejection."""
        rows = []
        while self._rejected:
            try:
                r = self._rejected.popleft()
            except IndexError:
                break
            rows.append(
                (
                    r.source,
                    r.provider,
                    r.received_at,
                    r.status,
                    r.reason,
                    r.message,
                    self._seal(orjson.dumps(dict(r.headers)), "rejection.headers", False),
                    self._seal(r.body, "rejection.body", False),
                    r.body_size,
                    r.request_id,
                    int(self.cipher is not None),
                )
            )
        if rows:
            conn.executemany(
                "INSERT INTO rejections (source, provider, received_at, status, reason, message,"
                " headers, body, body_size, request_id, sealed)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def prune_rejections(self, older_than: float, keep: int) -> int:
        """Delete rejections older than ``older_than`` and beyond the newest ``keep``."""

        def job(conn: sqlite3.Connection) -> int:
            gone = conn.execute(
                "DELETE FROM rejections WHERE received_at < ?", (older_than,)
            ).rowcount
            return (
                gone
                + conn.execute(
                    "DELETE FROM rejections WHERE id <= (SELECT id FROM rejections"
                    " ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (max(0, keep),),
                ).rowcount
            )

        return self._call(job)

    def _rejection_from_row(self, row: Sequence[Any]) -> Rejection:
        rid, source, provider, at, status, reason, message, headers, body, size, req, sealed = row
        try:
            headers = orjson.loads(self._unseal(headers, sealed, "rejection.headers"))
            body = self._unseal(body, sealed, "rejection.body")
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

    def rejections(
        self, *, source: str | None = None, query: str | None = None, limit: int = 100
    ) -> list[Rejection]:
        """Written rejections, newest first."""
        rows = self._read_query(
            f"SELECT {_REJECTION_COLUMNS} FROM rejections"
            " WHERE (:source IS NULL OR source = :source) AND (:like IS NULL"
            " OR reason LIKE :like ESCAPE '\\' OR message LIKE :like ESCAPE '\\'"
            " OR request_id LIKE :like ESCAPE '\\')"
            " ORDER BY id DESC LIMIT :limit",
            {"source": source, "like": _like(query) if query else None, "limit": limit},
        )
        return [self._rejection_from_row(row) for row in rows]

    def rejection(self, rejection_id: int) -> Rejection | None:
        """One written rejection."""
        rows = self._read_query(
            f"SELECT {_REJECTION_COLUMNS} FROM rejections WHERE id = ?", (rejection_id,)
        )
        return self._rejection_from_row(rows[0]) if rows else None

    def webhooks(
        self,
        *,
        source: str | None = None,
        outcome: str | None = None,
        query: str | None = None,
        limit: int = 100,
    ) -> list[WebhookSummary]:
        """Stored webhooks with their outcome, newest first; see :class:`Outbox`."""
        text = (query or "").strip()
        rows = self._read_query(
            _SUMMARIES,
            {
                "source": source,
                "outcome": outcome,
                "id": int(text) if text.isdigit() else None,
                "like": _like(text) if text else None,
                "limit": limit,
            },
        )
        return [_summary(row) for row in rows]

    def webhook(self, webhook_id: int) -> WebhookRecord | None:
        """One webhook with its request, events and attempt history (decrypted)."""
        summary = self._read_query(
            _SUMMARIES,
            {"source": None, "outcome": None, "id": webhook_id, "like": None, "limit": 1},
        )
        rows = self._read_query(
            f"SELECT {_WEBHOOK_COLUMNS}, detail FROM webhooks WHERE id = ?", (webhook_id,)
        )
        if not rows or not summary:
            return None
        events = self._read_query(
            "SELECT e.seq, e.webhook_id, e.event_id, e.name, e.state, e.attempts, e.last_error,"
            " e.created_at, e.delivered_at, p.payload, e.sealed FROM events e"
            " JOIN event_payloads p ON p.seq = e.seq WHERE e.webhook_id = ? ORDER BY e.seq",
            (webhook_id,),
        )
        history: dict[int, list[Attempt]] = {}
        seqs = [row[0] for row in events]
        for part in _chunks(seqs):
            for seq, at, outcome, error in self._read_query(
                f"SELECT seq, at, outcome, error FROM attempts WHERE seq IN ({_marks(part)})"
                " ORDER BY id",
                part,
            ):
                history.setdefault(seq, []).append(Attempt(seq, at, outcome, error))
        records = tuple(
            EventRecord(
                seq=seq,
                webhook_id=wid,
                event_id=event_id,
                name=name,
                state=state,
                attempts=attempts,
                last_error=last_error,
                created_at=created_at,
                delivered_at=delivered_at,
                payload=self._unseal(payload, sealed, "event.payload"),
                history=_with_delivery(history.get(seq, []), seq, state, delivered_at),
            )
            for (
                seq,
                wid,
                event_id,
                name,
                state,
                attempts,
                last_error,
                created_at,
                delivered_at,
                payload,
                sealed,
            ) in events
        )
        return WebhookRecord(
            summary=_summary(summary[0]),
            webhook=self._webhook_from_row(rows[0]),
            detail=rows[0][8],
            events=records,
        )

    def source_counts(self, since: float) -> dict[str, SourceCounts]:
        """Per-source counts; see :class:`Outbox`."""
        counts: dict[str, dict[str, int]] = {}
        queries = {
            "accepted": (
                "SELECT source, COUNT(*) FROM webhooks INDEXED BY webhooks_received"
                " WHERE status <> 'quarantined' AND received_at >= ? GROUP BY source",
                (since,),
            ),
            "rejected": (
                "SELECT source, COUNT(*) FROM rejections WHERE received_at >= ? GROUP BY source",
                (since,),
            ),
            "quarantined": (
                "SELECT source, COUNT(*) FROM webhooks WHERE status = 'quarantined'"
                " GROUP BY source",
                (),
            ),
            "dead": (
                "SELECT w.source, COUNT(*) FROM events e JOIN webhooks w ON w.id = e.webhook_id"
                " WHERE e.state = 'dead' GROUP BY w.source",
                (),
            ),
        }
        for key, (sql, args) in queries.items():
            for source, n in self._read_query(sql, args):
                counts.setdefault(source, {})[key] = n
        return {source: SourceCounts(**values) for source, values in sorted(counts.items())}

    def activity(self, since: float, bucket: float = 60.0) -> list[ActivityBucket]:
        """Per-bucket counts from ``since`` to now (the store's clock), oldest first."""
        if bucket <= 0:
            raise ValueError("bucket must be positive")
        n = max(1, math.ceil((self.clock() - since) / bucket))
        accepted = [0] * n
        rejected = [0] * n
        args = {"since": since, "bucket": bucket}
        for sql, into in (
            (
                "SELECT CAST((received_at - :since) / :bucket AS INTEGER) AS b, COUNT(*)"
                " FROM webhooks INDEXED BY webhooks_received"
                " WHERE status <> 'quarantined' AND received_at >= :since GROUP BY b",
                accepted,
            ),
            (
                "SELECT CAST((received_at - :since) / :bucket AS INTEGER) AS b, COUNT(*)"
                " FROM webhooks WHERE status = 'quarantined' AND received_at >= :since"
                " GROUP BY b",
                accepted,
            ),
            (
                "SELECT CAST((received_at - :since) / :bucket AS INTEGER) AS b, COUNT(*)"
                " FROM rejections WHERE received_at >= :since GROUP BY b",
                rejected,
            ),
        ):
            for b, count in self._read_query(sql, args):
                into[min(int(b), n - 1)] += count
        return [ActivityBucket(since + i * bucket, accepted[i], rejected[i]) for i in range(n)]

    # -- housekeeping -------------------------------------------------------------------

    def prune(self, older_than: float) -> int:
        """Delete events delivered before ``older_than``, then webhooks left without events.

        Works in chunks, each its own transaction, so receiving goes on during a long prune.
        Expired dedup entries go too (they are not counted).
        """

        def chunk(conn: sqlite3.Connection) -> int:
            seqs = [
                row[0]
                for row in conn.execute(
                    "DELETE FROM events WHERE seq IN (SELECT seq FROM events"
                    " WHERE state = 'delivered' AND delivered_at < ? LIMIT ?) RETURNING seq",
                    (older_than, _PRUNE_CHUNK),
                )
            ]
            for part in _chunks(seqs):
                conn.execute(f"DELETE FROM attempts WHERE seq IN ({_marks(part)})", part)
            gone = len(seqs)
            return (
                gone
                + conn.execute(
                    "DELETE FROM webhooks WHERE id IN (SELECT id FROM webhooks w"
                    " WHERE status <> 'quarantined' AND received_at < ? AND NOT EXISTS"
                    " (SELECT 1 FROM events e WHERE e.webhook_id = w.id) LIMIT ?)",
                    (older_than, _PRUNE_CHUNK),
                ).rowcount
            )

        total = 0
        while True:
            gone = self._call(chunk)
            total += gone
            if gone < _PRUNE_CHUNK:
                break
        self._call(self._prune_dedup)
        return total

    def purge(self) -> int:
        """Delete delivered and dead events, quarantined webhooks and webhooks left empty."""

        def job(conn: sqlite3.Connection) -> int:
            # a purged dead event no longer blocks its id from being accepted again
            conn.execute(
                "DELETE FROM dedup WHERE seq IN (SELECT seq FROM events WHERE state = 'dead')"
            )
            gone = conn.execute("DELETE FROM events WHERE state IN ('delivered', 'dead')").rowcount
            conn.execute(
                "DELETE FROM attempts WHERE NOT EXISTS"
                " (SELECT 1 FROM events e WHERE e.seq = attempts.seq)"
            )
            return (
                gone
                + conn.execute(
                    "DELETE FROM webhooks WHERE status = 'quarantined' OR NOT EXISTS"
                    " (SELECT 1 FROM events e WHERE e.webhook_id = webhooks.id)"
                ).rowcount
            )

        return self._call(job)

    def check_writable(self) -> None:
        """Commit a heartbeat through the writer; raises :class:`OutboxUnavailable` if it fails."""

        def job(conn: sqlite3.Connection) -> None:
            # a page-sized random pad needs fresh pages, so a full disk shows here first
            conn.execute(
                "INSERT INTO heartbeat (id, at, pid, pad) VALUES (1, ?, ?, ?) ON CONFLICT (id)"
                " DO UPDATE SET at = excluded.at, pid = excluded.pid, pad = excluded.pad",
                (self.clock(), os.getpid(), os.urandom(8192)),
            )

        self._call(job)

    def close(self) -> None:
        """Finish every queued write (and buffered rejection), then close. Idempotent."""
        if self._recorded > self._flushed:
            with contextlib.suppress(OutboxUnavailable):
                self._submit(lambda conn: None)
        self._writer.close()
        with self._read_lock, contextlib.suppress(sqlite3.Error):
            self._read.close()

    # -- opening ------------------------------------------------------------------------

    def _open_retrying(
        self, max_pages: int | None
    ) -> tuple[sqlite3.Connection, sqlite3.Connection]:
        """:meth:`_open_connections`, again while another opener holds the file's lock.

        Two processes opening a new file at once (two pods on one volume, a CLI command beside
        ``serve``) can both hold a shared lock and want an exclusive one to switch to WAL or
        create the tables; SQLite then refuses one at once, without waiting (its deadlock
        rule), so the busy timeout does not help. Such an open is retried until that timeout.
        """
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                return self._open_connections(max_pages)
            except (sqlite3.Error, OSError) as exc:
                busy = getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY
                if not busy or time.monotonic() >= deadline:
                    raise OutboxUnavailable(f"cannot open {self.path}: {exc}") from None
            time.sleep(0.01 + 0.04 * random.random())

    def _open_connections(
        self, max_pages: int | None
    ) -> tuple[sqlite3.Connection, sqlite3.Connection]:
        conns: list[sqlite3.Connection] = []
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._create_private_file()
            write = self._connect()
            conns.append(write)
            write.execute(f"PRAGMA synchronous={_SYNCHRONOUS[self.durability]}")
            write.execute("PRAGMA journal_size_limit=67108864")  # shrink the WAL after bursts
            if max_pages is not None:
                write.execute(f"PRAGMA max_page_count={int(max_pages)}")
            self._initialize(write)
            read = self._connect()
            conns.append(read)
            read.execute("PRAGMA query_only=ON")
        except BaseException:
            for conn in conns:
                conn.close()
            raise
        return write, read

    def _create_private_file(self) -> None:
        # webhook bodies are sensitive: owner-only; SQLite gives the -wal/-shm files the same mode
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"cannot switch to WAL mode (journal_mode={mode})")
        except BaseException:
            conn.close()
            raise
        return conn

    def _initialize(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _schema_statements():
                conn.execute(statement)
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            version = int(
                conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
            )
            if version > SCHEMA_VERSION:
                raise sqlite3.OperationalError(
                    f"outbox schema version {version} is newer than this gateway's"
                    f" ({SCHEMA_VERSION}); upgrade the gateway"
                )
            if version < 2:
                _migrate_to_2(conn)
            self._check_keys(conn)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    def _check_keys(self, conn: sqlite3.Connection) -> None:
        """Refuse to open while rows that may still be read need a key that is not configured."""
        configured = self.cipher.key_ids if self.cipher else frozenset()
        recorded = [bytes(r[0]) for r in conn.execute("SELECT key_id FROM encryption_keys")]
        for kid in recorded:
            if kid in configured:
                continue
            needed = conn.execute(
                "SELECT (SELECT COUNT(*) FROM events e JOIN event_payloads p ON p.seq = e.seq"
                " WHERE e.sealed & 1 AND e.state <> 'delivered'"
                " AND substr(p.payload, 2, 4) = :kid) + (SELECT COUNT(*) FROM webhooks"
                " WHERE sealed & 1 AND status = 'quarantined' AND substr(body, 2, 4) = :kid)",
                {"kid": kid},
            ).fetchone()[0]
            if needed:
                if self.cipher is None:
                    hint = "set outbox.encryption_key to the key that wrote them"
                else:
                    hint = "list that key after the new one in outbox.encryption_key"
                raise CipherError(
                    f"{needed} stored row(s) that are not delivered yet are encrypted with key"
                    f" id {kid.hex()}, which is not configured: {hint}"
                )
            conn.execute("DELETE FROM encryption_keys WHERE key_id = ?", (kid,))
        if self.cipher is not None:
            conn.execute(
                "INSERT OR IGNORE INTO encryption_keys (key_id, first_used) VALUES (?, ?)",
                (self.cipher.current_key_id, self.clock()),
            )

    # -- plumbing -----------------------------------------------------------------------

    def _submit(self, fn: Callable[[sqlite3.Connection], T]) -> Future[T]:
        return self._writer.submit(fn)

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return self._writer.submit(fn).result()

    def _update(
        self,
        sql: str,
        seqs: Sequence[int],
        *args: Any,
        history: tuple[str, float, str | None] | None = None,
    ) -> int:
        """Run ``sql`` over ``seqs`` in chunks; with ``history``, ``sql`` ends in
        ``RETURNING seq`` and each changed event gets an attempt row in the same transaction."""
        chunks = _chunks(seqs)
        if not chunks:
            return 0

        def job(conn: sqlite3.Connection) -> int:
            total = 0
            for chunk in chunks:
                cur = conn.execute(sql.format(marks=_marks(chunk)), (*args, *chunk))
                if history is None:
                    total += cur.rowcount
                else:
                    changed = [row[0] for row in cur.fetchall()]
                    self._record_attempts(conn, changed, history)
                    total += len(changed)
            return total

        return self._call(job)

    def _read_query(self, sql: str, args: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]:
        with self._read_lock:
            if self._writer.closed:
                raise OutboxUnavailable("the outbox is closed")
            try:
                return self._read.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise _unavailable(exc) from None

    # -- rows ---------------------------------------------------------------------------

    def _seal(self, data: bytes, kind: str, compress: bool) -> bytes:
        """``data`` as stored: compressed if ``compress``, then encrypted if a key is set."""
        if compress:
            data = zlib.compress(data, _ZLIB_LEVEL)
        return self.cipher.encrypt(data, kind) if self.cipher else data

    def _worth_compressing(self, data: bytes) -> bool:
        return self.compress and len(data) >= _COMPRESS_MIN_BYTES

    def _flags(self, compressed: bool) -> int:
        """The ``sealed`` column's value for a row written now."""
        return (_ENCRYPTED if self.cipher is not None else 0) | (_COMPRESSED if compressed else 0)

    def _seal_payload(self, payload: bytes) -> tuple[bytes, int]:
        """An event payload as stored, with its row's flags."""
        compress = self._worth_compressing(payload)
        return self._seal(payload, "event.payload", compress), self._flags(compress)

    def _unseal(self, blob: bytes, sealed: int, kind: str) -> bytes:
        """The stored ``blob`` back as written; ``sealed`` holds the row's flags."""
        if sealed & _ENCRYPTED:
            if self.cipher is None:
                raise CipherError(f"stored {kind} is encrypted and no outbox.encryption_key is set")
            blob = self.cipher.decrypt(blob, kind)
        if sealed & _COMPRESSED:
            blob = zlib.decompress(blob)
        return blob

    def _webhook_from_row(self, row: Sequence[Any]) -> Webhook:
        _, source, provider, received_at, headers, query, body, sealed = row[:8]
        return Webhook(
            source=source,
            provider=provider,
            body=self._unseal(body, sealed, "webhook.body"),
            headers=orjson.loads(self._unseal(headers, sealed, "webhook.headers")),
            query=orjson.loads(self._unseal(query, sealed, "webhook.query")),
            received_at=received_at,
        )

    @staticmethod
    def _checked(
        events: Sequence[bytes], event_ids: Sequence[str | None], names: Sequence[str]
    ) -> tuple[list[bytes], list[str | None], list[str]]:
        if not len(events) == len(event_ids) == len(names):
            raise ValueError("events, event_ids and names must have the same length")
        return list(events), list(event_ids), list(names)

    def _accept_job(
        self,
        webhook: Webhook,
        events: Sequence[bytes],
        event_ids: Sequence[str | None],
        names: Sequence[str],
        body_key: str | None = None,
    ) -> Callable[[sqlite3.Connection], AcceptResult]:
        payloads, ids, labels = self._checked(events, event_ids, names)
        # sealing and serialising happen in the caller's thread, not the writer's
        return _AcceptCall(
            self,
            self._webhook_row(webhook, "accepted"),
            [self._seal_payload(payload) for payload in payloads],
            [len(payload) for payload in payloads],
            ids,
            labels,
            body_key,
        )

    def _quarantine_job(
        self, webhook: Webhook, error: str, detail: str
    ) -> Callable[[sqlite3.Connection], int]:
        return lambda conn: self._insert_webhook(conn, webhook, "quarantined", error, detail)

    def _webhook_row(
        self,
        webhook: Webhook,
        status: str,
        error: str | None = None,
        detail: str | None = None,
    ) -> tuple[Any, ...]:
        """The ``webhooks`` columns after ``id``, in ``_WEBHOOK_INSERT_COLUMNS`` order."""
        compress = self._worth_compressing(webhook.body)  # headers and query go with it
        return (
            webhook.source,
            webhook.provider,
            webhook.received_at,
            self._seal(orjson.dumps(dict(webhook.headers)), "webhook.headers", compress),
            self._seal(orjson.dumps(dict(webhook.query)), "webhook.query", compress),
            self._seal(webhook.body, "webhook.body", compress),
            self._flags(compress),
            status,
            error,
            detail,
        )

    def _insert_webhook(
        self,
        conn: sqlite3.Connection,
        webhook: Webhook,
        status: str,
        error: str | None = None,
        detail: str | None = None,
    ) -> int:
        cur = conn.execute(
            f"INSERT INTO webhooks ({_WEBHOOK_INSERT_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            self._webhook_row(webhook, status, error, detail),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def _accept_many(
        self, conn: sqlite3.Connection, calls: Sequence[_AcceptCall]
    ) -> list[AcceptResult]:
        """Store the webhooks of ``calls`` and their events: a few statements for all of them.

        Ids are given here, after the largest ever used (what AUTOINCREMENT would give): the
        transaction holds SQLite's write lock, so no other connection can take them meanwhile.
        """
        last = conn.execute(_LAST_WEBHOOK_ID).fetchone()[0]
        ids = range(last + 1, last + 1 + len(calls))
        rows = [(webhook_id, *call.row) for webhook_id, call in zip(ids, calls, strict=True)]
        _insert_rows(conn, "webhooks", f"id, {_WEBHOOK_INSERT_COLUMNS}", rows)
        counts = self._store_events(
            conn,
            [
                (webhook_id, call.payloads, call.sizes, call.event_ids, call.names)
                for webhook_id, call in zip(ids, calls, strict=True)
            ],
            [call.body_key for call in calls],
        )
        return [AcceptResult(wid, *count) for wid, count in zip(ids, counts, strict=True)]

    def _store_events(
        self,
        conn: sqlite3.Connection,
        batches: Sequence[
            tuple[int, list[tuple[bytes, int]], list[int], list[str | None], list[str]]
        ],
        body_keys: Sequence[str | None] = (),
    ) -> list[tuple[int, int]]:
        """Insert each webhook's events; ``(stored, duplicates)`` per webhook.

        Each payload comes as stored (see :meth:`_seal_payload`) with its row's flags.

        An event id accepted within the dedup window (and not dead-lettered since), or earlier
        in ``batches``, is a duplicate and is not stored, as if the webhooks came one by one.
        A webhook whose body key (``body_keys``, parallel to ``batches``) was seen so is a
        duplicate whole; its key is kept in ``dedup`` beside the event ids.
        """
        now = self.clock()
        dedup = self.dedup_window > 0
        keys = list(body_keys) or [None] * len(batches)
        seen: set[str] = set()
        if dedup:
            wanted = [eid for batch in batches for eid in batch[3] if eid is not None]
            wanted.extend(key for key in keys if key is not None)
            seen = self._seen_many(conn, wanted, now)
        seq = conn.execute(_LAST_EVENT_SEQ).fetchone()[0]
        event_rows: list[Any] = []
        payload_rows: list[Any] = []
        dedup_rows: list[Any] = []
        counts: list[tuple[int, int]] = []
        for (webhook_id, payloads, sizes, event_ids, names), key in zip(batches, keys, strict=True):
            stored = duplicates = 0
            if dedup and key is not None:
                if key in seen:
                    counts.append((0, len(payloads)))
                    continue
                seen.add(key)
            first = seq + 1
            for (payload, sealed), size, event_id, name in zip(
                payloads, sizes, event_ids, names, strict=True
            ):
                if dedup and event_id is not None:
                    if event_id in seen:
                        duplicates += 1
                        continue
                    seen.add(event_id)
                    dedup_rows.append((event_id, now, seq + 1))
                seq += 1
                event_rows.append(
                    (seq, webhook_id, event_id, name, size, sealed, now, now, "pending")
                )
                payload_rows.append((seq, payload))
                stored += 1
            if dedup and key is not None:
                # the key follows the first stored event; seq 0 (none) keeps it seen
                dedup_rows.append((key, now, first if stored else 0))
            counts.append((stored, duplicates))
        _insert_rows(conn, "events", _EVENT_COLUMNS, event_rows)
        _insert_rows(conn, "event_payloads", "seq, payload", payload_rows)
        _insert_rows(conn, "dedup", "event_id, first_seen, seq", dedup_rows, replace=True)
        before, self._accepts = self._accepts, self._accepts + len(batches)
        if dedup and before // _DEDUP_PRUNE_EVERY != self._accepts // _DEDUP_PRUNE_EVERY:
            self._prune_dedup(conn)
        return counts

    def _seen_many(self, conn: sqlite3.Connection, event_ids: list[str], now: float) -> set[str]:
        """Which of ``event_ids`` were accepted within the window and not dead-lettered since.

        An entry whose event was pruned (delivered long ago) still counts: its state is NULL.
        """
        seen: set[str] = set()
        distinct = list(dict.fromkeys(event_ids))
        for start in range(0, len(distinct), _CHUNK):
            part = distinct[start : start + _CHUNK]
            seen.update(
                eid
                for (eid,) in conn.execute(
                    "SELECT d.event_id FROM dedup d LEFT JOIN events e ON e.seq = d.seq"
                    f" WHERE d.event_id IN ({_marks(part)}) AND d.first_seen > ?"
                    " AND e.state IS NOT 'dead'",
                    (*part, now - self.dedup_window),
                )
            )
        return seen

    def _prune_dedup(self, conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM dedup WHERE first_seen <= ?", (self.clock() - self.dedup_window,))

    def _claim(
        self,
        conn: sqlite3.Connection,
        at: float,
        max_events: int,
        max_bytes: int,
        lease_seconds: float,
    ) -> list[StoredEvent]:
        next_due, next_expiry = conn.execute(
            "SELECT (SELECT MIN(next_attempt_at) FROM events WHERE state = 'pending'),"
            " (SELECT MIN(lease_until) FROM events WHERE state = 'leased')"
        ).fetchone()
        # cheap answer for the idle poll, and during an outage when every row waits for a retry
        if (next_due is None or next_due > at) and (next_expiry is None or next_expiry >= at):
            return []
        window = {"at": at, "limit": max_events + 1}
        rows = conn.execute(_DUE, window).fetchall() + conn.execute(_EXPIRED, window).fetchall()
        chosen = _fit(sorted(rows)[: max_events + 1], max_events, max_bytes)
        if not chosen:
            return []
        leased: list[tuple[Any, ...]] = []
        for chunk in _chunks(chosen):
            marks = _marks(chunk)
            conn.execute(
                f"UPDATE events SET state = 'leased', lease_until = ? WHERE seq IN ({marks})",
                (at + lease_seconds, *chunk),
            )
            leased += conn.execute(
                "SELECT e.seq, e.webhook_id, e.event_id, e.name, p.payload, e.sealed, e.attempts,"
                " e.created_at FROM events e JOIN event_payloads p ON p.seq = e.seq"
                f" WHERE e.seq IN ({marks})",
                chunk,
            ).fetchall()
        leased.sort()
        return [
            StoredEvent(
                seq=seq,
                webhook_id=webhook_id,
                event_id=event_id,
                name=name,
                payload=self._unseal(payload, sealed, "event.payload"),
                attempts=attempts,
                created_at=created_at,
            )
            for seq, webhook_id, event_id, name, payload, sealed, attempts, created_at in leased
        ]

    def entries(self, states: Collection[str] | None = None, limit: int = 100) -> list[OutboxEntry]:
        """Rows in the given states (default: all but delivered), oldest first; see Outbox."""
        wanted = [s for s in ENTRY_STATES if s != "delivered"] if states is None else list(states)
        unknown = sorted(set(wanted) - set(ENTRY_STATES))
        if unknown:
            raise ValueError(
                f"unknown state {', '.join(unknown)}; one of {', '.join(ENTRY_STATES)}"
            )
        rows: list[OutboxEntry] = []
        for state in dict.fromkeys(wanted):
            if state == "quarantined":
                held = self._read_query(
                    "SELECT id, source, error, received_at FROM webhooks"
                    " WHERE status = 'quarantined' ORDER BY id LIMIT ?",
                    (limit,),
                )
                rows += [
                    OutboxEntry(wid, "webhook", state, src, None, None, wid, 0, None, err or "", at)
                    for wid, src, err, at in held
                ]
                continue
            events = self._read_query(
                "SELECT e.seq, e.webhook_id, w.source, e.name, e.event_id, e.attempts,"
                " CASE e.state WHEN 'pending' THEN e.next_attempt_at"
                " WHEN 'leased' THEN e.lease_until END, e.last_error, e.created_at FROM events e"
                f" LEFT JOIN webhooks w ON w.id = e.webhook_id WHERE {_ENTRY_WHERE[state]}"
                " ORDER BY e.seq LIMIT ?",
                (limit,),
            )
            rows += [
                OutboxEntry(seq, "event", state, src or "", name, eid, wid, n, due, err or "", at)
                for seq, wid, src, name, eid, n, due, err, at in events
            ]
        rows.sort(key=lambda r: (r.created_at, r.kind, r.id))
        return rows[:limit]


_WEBHOOK_INSERT_COLUMNS = (
    "source, provider, received_at, headers, query, body, sealed, status, error, detail"
)
_EVENT_COLUMNS = "seq, webhook_id, event_id, name, size, sealed, next_attempt_at, created_at, state"
# the largest id a table ever used: AUTOINCREMENT's counter, or its largest row
_LAST_WEBHOOK_ID = (
    "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'webhooks'), 0),"
    " COALESCE((SELECT MAX(id) FROM webhooks), 0))"
)
_LAST_EVENT_SEQ = (
    "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),"
    " COALESCE((SELECT MAX(seq) FROM events), 0))"
)


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


def _with_delivery(
    history: list[Attempt], seq: int, state: str, delivered_at: float | None
) -> tuple[Attempt, ...]:
    """An event's recorded attempts, then its delivery (the last outcome an event can have).

    Files written before deliveries were read from ``delivered_at`` hold a ``delivered`` row
    as well: it is the same delivery, shown once.
    """
    if state == "delivered" and delivered_at is not None:
        kept = [a for a in history if a.outcome != "delivered"]
        return (*kept, Attempt(seq, delivered_at, "delivered", None))
    return tuple(history)


def _schema_statements() -> list[str]:
    """``_SCHEMA`` as single statements (a trigger's body keeps its own semicolons)."""
    statements: list[str] = []
    pending = ""
    for part in _SCHEMA.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending.strip())
            pending = ""
    return statements


def _migrate_to_2(conn: sqlite3.Connection) -> None:
    """Version 1 kept each payload in its event's row: move them to ``event_payloads``."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
    if "payload" in columns:
        conn.execute(
            "INSERT OR IGNORE INTO event_payloads (seq, payload) SELECT seq, payload FROM events"
        )
        conn.execute("ALTER TABLE events DROP COLUMN payload")
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")


def _summary(row: Sequence[Any]) -> WebhookSummary:
    wid, source, provider, received_at, status, error, n, names, outcome = row
    return WebhookSummary(
        id=wid,
        source=source,
        provider=provider,
        received_at=received_at,
        status=status,
        outcome=outcome,
        events=n,
        event_names=tuple(names.split("\n")) if names else (),
        error=error,
    )


def _fit(rows: list[Any], max_events: int, max_bytes: int) -> list[int]:
    """The seqs of a batch from ``(seq, webhook_id, size)`` rows in seq order.

    At least one row; then as many as fit the bounds. A webhook cut off at the end is left
    whole for the next batch, unless it is all the batch holds.
    """
    chosen: list[int] = []
    total = 0
    for seq, _, size in rows:
        if chosen and (len(chosen) == max_events or total + size > max_bytes):
            break
        chosen.append(seq)
        total += size
    if 0 < len(chosen) < len(rows):
        webhook_of = {seq: webhook_id for seq, webhook_id, _ in rows}
        cut = webhook_of[rows[len(chosen)][0]]
        whole = [seq for seq in chosen if webhook_of[seq] != cut]
        if whole:
            chosen = whole
    return chosen
