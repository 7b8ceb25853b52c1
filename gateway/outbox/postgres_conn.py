"""The PostgreSQL outbox's connections: settings, the writer's session, the LISTEN thread."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from typing import Any

import psycopg
from psycopg import pq

from gateway.config import ConfigError, OutboxConfig, resolve_secret_text
from gateway.outbox import OutboxUnavailable
from gateway.outbox.writer import Transactions

APPLICATION_NAME = "webhook-gateway"
#: NOTIFY channel: a replica stored events; the payload is the sender's replica id
CHANNEL = "webhook_gateway_events"


def database_url(config: OutboxConfig, environ: Mapping[str, str] | None = None) -> str:
    """The libpq URL ``outbox.url`` refers to; :class:`ConfigError` naming the key if unset."""
    try:
        return resolve_secret_text(config.url, environ)
    except ConfigError as exc:
        raise ConfigError(f"outbox.url: {exc}") from None


def connection_options(statement_timeout: float, connect_timeout: float) -> dict[str, Any]:
    """Keyword arguments for every connection: time limits, keepalives, a name in pg_stat."""
    return {
        "connect_timeout": max(1, round(connect_timeout)),
        "application_name": APPLICATION_NAME,
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
        # a stuck statement or a replica that stops mid-transaction cannot hold row locks long
        "options": f"-c statement_timeout={round(statement_timeout * 1000)}"
        " -c idle_in_transaction_session_timeout=60000",
    }


def connect(
    config: OutboxConfig, environ: Mapping[str, str] | None = None, *, autocommit: bool = False
) -> psycopg.Connection[Any]:
    """One connection to the configured database (``outbox migrate`` uses it)."""
    options = connection_options(config.statement_timeout, config.connect_timeout)
    try:
        return psycopg.connect(database_url(config, environ), autocommit=autocommit, **options)
    except psycopg.Error as exc:
        raise OutboxUnavailable(f"cannot connect to the database: {exc}") from None


class Session:
    """The writer's connection; a broken one is replaced when the next group begins."""

    def __init__(self, opener: Callable[[], psycopg.Connection[Any]]) -> None:
        self._open = opener
        self.conn: psycopg.Connection[Any] | None = None
        self.notify = False  # the group stored events: NOTIFY the other replicas at commit

    def ensure(self) -> psycopg.Connection[Any]:
        if self.conn is None or self.conn.broken or self.conn.closed:
            if self.conn is not None:
                with contextlib.suppress(Exception):
                    self.conn.close()
            self.conn = None
            self.conn = self._open()
        return self.conn

    def execute(self, sql: Any, params: Any = None) -> psycopg.Cursor[Any]:
        if self.conn is None:
            raise OutboxUnavailable("the database connection is closed")
        return self.conn.execute(sql, params)

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()


class PgTransactions(Transactions[Session]):
    driver_error = psycopg.Error
    savepoints = False

    def __init__(self, replica: str) -> None:
        self.replica = replica

    def execute(self, conn: Session, sql: str) -> None:
        conn.execute(sql.encode())

    def begin(self, conn: Session) -> None:
        conn.ensure()
        conn.notify = False
        conn.execute(b"BEGIN")

    def commit(self, conn: Session) -> None:
        if conn.notify:  # once per commit group: NOTIFY serialises commits at the server
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, self.replica))
        conn.execute(b"COMMIT")

    def in_transaction(self, conn: Session) -> bool:
        # a failed statement leaves the transaction aborted but the session usable
        status = conn.conn.info.transaction_status if conn.conn is not None else None
        return status in (pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR)

    def close(self, conn: Session) -> None:
        conn.close()


class Listener:
    """A thread LISTENing for other replicas' commits; calls ``wake`` for each.

    Reconnects after a lost connection (with the idle poll covering the gap).
    """

    def __init__(self, opener: Callable[[], psycopg.Connection[Any]], replica: str) -> None:
        self._open = opener
        self._replica = replica
        self.callbacks: list[Callable[[], None]] = []
        self._stop = threading.Event()
        self.ready = threading.Event()  # LISTEN is in effect
        self._thread = threading.Thread(target=self._loop, name="outbox-listen", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                with self._open() as conn:
                    conn.execute(f"LISTEN {CHANNEL}".encode())
                    self.ready.set()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            if note.payload != self._replica:
                                for callback in list(self.callbacks):
                                    with contextlib.suppress(Exception):
                                        callback()
            except psycopg.Error:
                self.ready.clear()
                self._stop.wait(1.0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
