"""The SQLite outbox's file: schema, migrations, and opening the connections.

A file is opened by one transaction that creates missing tables, migrates an older schema,
refuses a newer one, and refuses rows encrypted with a key that is not configured.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from gateway.outbox import OutboxUnavailable
from gateway.outbox.base import check_keys
from gateway.outbox.crypto import Cipher
from gateway.outbox.sqlite_read import SQLITE

SCHEMA_VERSION = 4  # 2: payloads in their own table; 3: lease owner tokens; 4: API answers
MIN_SQLITE = (3, 35, 0)  # RETURNING (release, dead_letter, prune ...)
SYNCHRONOUS: dict[str, str] = {"power_loss": "FULL", "process_crash": "NORMAL"}

# Partial indexes keep each state's rows in their own small index: the claim, stats and
# prune queries touch only the rows of the state they ask for, however many delivered rows
# the retention period keeps around.
SCHEMA = """
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
    lease_token TEXT,
    last_error TEXT,
    created_at REAL NOT NULL,
    delivered_at REAL,
    delivery_status INTEGER,
    delivery_ms REAL
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
    error TEXT,
    status INTEGER,
    latency_ms REAL
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
-- Named leases of periodic jobs (the backfill reconciler): one holder at a time per name.
CREATE TABLE IF NOT EXISTS job_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS heartbeat (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at REAL NOT NULL,
    pid INTEGER NOT NULL,
    pad BLOB NOT NULL
);
"""


class FileSpec:
    """How to open one outbox file: its path and the settings its connections need."""

    __slots__ = ("busy_timeout", "cipher", "clock", "max_pages", "path", "synchronous")

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str,
        busy_timeout: float,
        max_pages: int | None,
        cipher: Cipher | None,
        clock: Callable[[], float],
    ) -> None:
        self.path = path
        self.synchronous = synchronous
        self.busy_timeout = busy_timeout
        self.max_pages = max_pages
        self.cipher = cipher
        self.clock = clock


def open_retrying(spec: FileSpec) -> tuple[sqlite3.Connection, sqlite3.Connection]:
    """:func:`open_connections`, again while another opener holds the file's lock.

    Two processes opening a new file at once (two pods on one volume, a CLI command beside
    ``serve``) can both hold a shared lock and want an exclusive one to switch to WAL or
    create the tables; SQLite then refuses one at once, without waiting (its deadlock
    rule), so the busy timeout does not help. Such an open is retried until that timeout.
    """
    deadline = time.monotonic() + spec.busy_timeout
    while True:
        try:
            return open_connections(spec)
        except (sqlite3.Error, OSError) as exc:
            busy = getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() >= deadline:
                raise OutboxUnavailable(f"cannot open {spec.path}: {exc}") from None
        time.sleep(0.01 + 0.04 * random.random())


def open_connections(spec: FileSpec) -> tuple[sqlite3.Connection, sqlite3.Connection]:
    """The write connection (schema ready, keys checked) and a query-only read connection."""
    conns: list[sqlite3.Connection] = []
    try:
        spec.path.parent.mkdir(parents=True, exist_ok=True)
        _create_private_file(spec.path)
        write = _connect(spec)
        conns.append(write)
        check_sqlite_version(write.execute("SELECT sqlite_version()").fetchone()[0])
        write.execute(f"PRAGMA synchronous={spec.synchronous}")
        write.execute("PRAGMA journal_size_limit=67108864")  # shrink the WAL after bursts
        if spec.max_pages is not None:
            write.execute(f"PRAGMA max_page_count={int(spec.max_pages)}")
        _initialize(write, spec)
        read = _connect(spec)
        conns.append(read)
        read.execute("PRAGMA query_only=ON")
    except BaseException:
        for conn in conns:
            conn.close()
        raise
    return write, read


def check_sqlite_version(version: str) -> None:
    """Raise :class:`OutboxUnavailable` unless ``version`` is at least :data:`MIN_SQLITE`."""
    parts = tuple(int(p) if p.isdigit() else 0 for p in version.split(".")[:3])
    if parts < MIN_SQLITE:
        need = ".".join(map(str, MIN_SQLITE[:2]))
        raise OutboxUnavailable(
            f"SQLite {version} is too old: the outbox needs SQLite {need} or newer (for"
            " RETURNING). Python's sqlite3 module uses the system library: upgrade it (or run"
            " the gateway's container image, or a Python built against a newer SQLite)"
        )


def _create_private_file(path: Path) -> None:
    # webhook bodies are sensitive: owner-only; SQLite gives the -wal/-shm files the same mode
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _connect(spec: FileSpec) -> sqlite3.Connection:
    conn = sqlite3.connect(
        spec.path,
        timeout=spec.busy_timeout,
        isolation_level=None,
        check_same_thread=False,
    )
    try:
        conn.execute(f"PRAGMA busy_timeout={int(spec.busy_timeout * 1000)}")
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot switch to WAL mode (journal_mode={mode})")
    except BaseException:
        conn.close()
        raise
    return conn


def _initialize(conn: sqlite3.Connection, spec: FileSpec) -> None:
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
        if version < 3:
            _migrate_to_3(conn)
        if version < 4:
            _migrate_to_4(conn)
        check_keys(conn, spec.cipher, spec.clock(), SQLITE)
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def _schema_statements() -> list[str]:
    """``SCHEMA`` as single statements (a trigger's body keeps its own semicolons)."""
    statements: list[str] = []
    pending = ""
    for part in SCHEMA.split(";"):
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


def _migrate_to_3(conn: sqlite3.Connection) -> None:
    """Version 3 records who holds a lease: rows leased before it have no token and are
    claimed again when their lease ends, as a crashed holder's would be."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
    if "lease_token" not in columns:
        conn.execute("ALTER TABLE events ADD COLUMN lease_token TEXT")
    conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")


def _migrate_to_4(conn: sqlite3.Connection) -> None:
    """Version 4 keeps the Event API's answer (HTTP status, latency) to each attempt: in
    ``attempts`` for failed ones, beside ``delivered_at`` for the delivery. Older rows have
    none."""
    added = {
        "events": ("delivery_status INTEGER", "delivery_ms REAL"),
        "attempts": ("status INTEGER", "latency_ms REAL"),
    }
    for table, columns in added.items():
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for column in columns:
            if column.split()[0] not in present:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
    conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
