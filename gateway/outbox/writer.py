"""Group commit: one thread owns a write connection and runs queued jobs, many per transaction.

Backend-neutral: a backend describes its transactions with a :class:`Transactions` subclass
(how to begin and commit, whether a failure lost the whole transaction, which driver errors
mean "unavailable") and gives the writer its connection. A job is any callable taking the
connection; jobs of one :class:`Batchable` class queued together run in one call.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

from gateway.outbox import OutboxUnavailable

C = TypeVar("C")
T = TypeVar("T")

MAX_GROUP = 512  # jobs per transaction: bounds how long one commit holds the write lock


class Transactions(Generic[C]):
    """How the writer drives one backend's connection; SQL that SQLite and PostgreSQL share.

    ``driver_error`` is the driver's base exception class (``sqlite3.Error``,
    ``psycopg.Error``): a job raising one fails with :class:`OutboxUnavailable`.
    """

    driver_error: type[Exception] = Exception

    def execute(self, conn: C, sql: str) -> None:
        conn.execute(sql)  # type: ignore[attr-defined]

    def begin(self, conn: C) -> None:
        self.execute(conn, "BEGIN")

    def commit(self, conn: C) -> None:
        self.execute(conn, "COMMIT")

    def rollback(self, conn: C) -> None:
        """Undo a failed group; never raises."""
        if self.in_transaction(conn):
            with contextlib.suppress(Exception):
                self.execute(conn, "ROLLBACK")

    def in_transaction(self, conn: C) -> bool:
        """Whether the transaction survived a failed statement (a savepoint can undo it)."""
        raise NotImplementedError

    def close(self, conn: C) -> None:
        with contextlib.suppress(Exception):
            conn.close()  # type: ignore[attr-defined]

    def job_error(self, exc: Exception) -> Exception:
        """What a job's caller gets for ``exc``."""
        return unavailable(exc) if isinstance(exc, self.driver_error) else exc


class Job:
    """A write for the writer thread, awaited through a ``concurrent.futures.Future``."""

    __slots__ = ("fn", "future")

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn
        self.future: Future[Any] = Future()

    def start(self) -> bool:
        """False when the caller already gave up (the job is then not run)."""
        return self.future.set_running_or_notify_cancel()


class AsyncJob:
    """A write awaited on an event loop: its asyncio future is settled from the loop thread.

    The writer hands every outcome of one commit for one loop over in one
    ``call_soon_threadsafe``, so concurrent webhooks share one wake-up of the loop as they share
    one commit (and no ``concurrent.futures.Future``, with its lock and condition, is made).
    """

    __slots__ = ("fn", "loop", "waiter")

    def __init__(
        self,
        fn: Callable[[Any], Any],
        loop: asyncio.AbstractEventLoop,
        waiter: asyncio.Future[Any],
    ) -> None:
        self.fn = fn
        self.loop = loop
        self.waiter = waiter

    def start(self) -> bool:
        # read from the writer thread: a request cancelled before its write began is dropped
        return not self.waiter.cancelled()


class Batchable:
    """A job function that can also run together with others of its class.

    The writer runs a run of consecutive jobs of one such class with one :meth:`run_many`
    call: a few statements for the whole run instead of several per job. ``run_many`` must
    give each job the value that calling it alone would have.
    """

    def __call__(self, conn: Any) -> Any:
        return self.run_many(conn, [self])[0]

    def run_many(self, conn: Any, calls: Sequence[Any]) -> list[Any]:
        raise NotImplementedError


AnyJob = Job | AsyncJob
Outcome = tuple[AnyJob, Any, BaseException | None]


def _settle(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for waiter, value, error in outcomes:
        if waiter.done():  # cancelled meanwhile: the write stands, nobody waits for it
            continue
        if error is None:
            waiter.set_result(value)
        else:
            waiter.set_exception(error)


def hand_to_loops(outcomes: list[Outcome]) -> None:
    """Settle async jobs' futures: one ``call_soon_threadsafe`` per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
    for job, value, error in outcomes:
        assert isinstance(job, AsyncJob)
        by_loop.setdefault(job.loop, []).append((job.waiter, value, error))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(_settle, settled)


class GroupLost(Exception):
    """The database rolled back the whole transaction (disk full, I/O error): every job failed."""


def unavailable(exc: BaseException) -> OutboxUnavailable:
    cause = exc.__cause__ if isinstance(exc, GroupLost) and exc.__cause__ else exc
    return OutboxUnavailable(f"{type(cause).__name__}: {cause}")


class GroupCommitWriter(Generic[C]):
    """A thread that owns one connection and runs queued jobs, many per transaction.

    It takes one job, then every job already queued (up to :data:`MAX_GROUP`), and runs them
    in one transaction, each in its own savepoint: a job that raises rolls back alone and gets
    its own exception. After the one ``COMMIT`` every future is resolved. ``before_commit``
    runs last in every transaction that carries jobs (when ``before_commit_due()``), in its
    own savepoint, and its failure never fails the jobs.
    """

    def __init__(
        self,
        conn: C,
        transactions: Transactions[C],
        before_commit: Callable[[C], None] | None = None,
    ) -> None:
        self.conn = conn
        self.transactions = transactions
        self.before_commit = before_commit
        #: whether ``before_commit`` has anything to write (no savepoint for nothing)
        self.before_commit_due: Callable[[], bool] = lambda: True
        #: called with each transaction's duration in seconds, BEGIN to COMMIT (the fsync too)
        self.on_commit: Callable[[float], None] | None = None
        self.commit_count = 0
        self.job_count = 0
        self.closed = False
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[AnyJob | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="outbox-writer", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[C], T]) -> Future[T]:
        job = Job(fn)
        self._put(job)
        return job.future

    def submit_async(self, fn: Callable[[C], T]) -> asyncio.Future[T]:
        """Queue ``fn``; its outcome settles the returned future on the running loop."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[T] = loop.create_future()
        self._put(AsyncJob(fn, loop, waiter))
        return waiter

    def _put(self, job: AnyJob) -> None:
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
        self.transactions.close(self.conn)

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._jobs.get()
            if first is None:
                return
            group: list[AnyJob] = [first]
            while len(group) < MAX_GROUP:
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

    def _run(self, jobs: list[AnyJob]) -> None:
        conn = self.conn
        tx = self.transactions
        outcomes: list[Outcome] = []
        started = time.perf_counter()
        try:
            tx.begin(conn)
            i = 0
            while i < len(jobs):
                fn = jobs[i].fn
                if isinstance(fn, Batchable):
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
            tx.commit(conn)
        except BaseException as exc:
            tx.rollback(conn)
            failed: list[Outcome] = [(job, None, unavailable(exc)) for job in jobs]
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

    def _run_one(self, conn: C, job: AnyJob) -> Outcome:
        """One job in its own savepoint: its failure rolls back only its own writes."""
        tx = self.transactions
        tx.execute(conn, "SAVEPOINT job")
        try:
            value = job.fn(conn)
        except Exception as exc:
            if not tx.in_transaction(conn):
                raise GroupLost() from exc
            tx.execute(conn, "ROLLBACK TO job")
            tx.execute(conn, "RELEASE job")
            return (job, None, tx.job_error(exc))
        tx.execute(conn, "RELEASE job")
        return (job, value, None)

    def _run_batch(self, conn: C, jobs: list[AnyJob]) -> list[Outcome]:
        """Jobs of one batchable kind in a few statements; one by one if the batch fails."""
        if len(jobs) == 1:
            return [self._run_one(conn, jobs[0])]
        first = jobs[0].fn
        assert isinstance(first, Batchable)
        tx = self.transactions
        tx.execute(conn, "SAVEPOINT batch")
        try:
            values = first.run_many(conn, [job.fn for job in jobs])
        except Exception as exc:
            if not tx.in_transaction(conn):
                raise GroupLost() from exc
            tx.execute(conn, "ROLLBACK TO batch")
            tx.execute(conn, "RELEASE batch")
            return [self._run_one(conn, job) for job in jobs]  # find the job that fails
        tx.execute(conn, "RELEASE batch")
        return [(job, value, None) for job, value in zip(jobs, values, strict=True)]

    def _piggyback(self, conn: C, fn: Callable[[C], None]) -> None:
        """Run ``fn`` in the group's transaction; its failure never fails the group's jobs."""
        tx = self.transactions
        tx.execute(conn, "SAVEPOINT extra")
        try:
            fn(conn)
        except Exception as exc:
            if not tx.in_transaction(conn):
                raise GroupLost() from exc
            tx.execute(conn, "ROLLBACK TO extra")
        tx.execute(conn, "RELEASE extra")

    @staticmethod
    def _resolve(outcomes: list[Outcome]) -> None:
        waiting_loops: list[Outcome] = []
        for outcome in outcomes:
            job, value, error = outcome
            if isinstance(job, AsyncJob):
                waiting_loops.append(outcome)
            elif error is None:
                job.future.set_result(value)
            else:
                job.future.set_exception(error)
        if waiting_loops:
            hand_to_loops(waiting_loops)
