"""The backend-neutral group-commit writer, driven through a real SQLite connection.

The SQLite backend never loses its connection; a client-server backend does (the database
restarts). These tests lose the writer's connection on purpose and check that the writer
answers ``OutboxUnavailable`` while it cannot reconnect and carries on once it can.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.outbox import OutboxUnavailable
from gateway.outbox.writer import GroupCommitWriter, Transactions


class _Transactions(Transactions[sqlite3.Connection]):
    driver_error = sqlite3.Error

    def in_transaction(self, conn: sqlite3.Connection) -> bool:
        return conn.in_transaction

    def broken(self, conn: sqlite3.Connection) -> bool:
        try:
            conn.execute("SELECT 1")
        except sqlite3.ProgrammingError:  # "Cannot operate on a closed database"
            return True
        return False


class Server:
    """Connections to one database file, refused while ``down`` (a restarting server)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.down = False
        self.opened = 0

    def connect(self) -> sqlite3.Connection:
        if self.down:
            raise sqlite3.OperationalError("connection refused")
        self.opened += 1
        return sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)


def insert(value: int):  # type: ignore[no-untyped-def]
    return lambda conn: conn.execute("INSERT INTO t (v) VALUES (?)", (value,)).rowcount


def test_a_lost_connection_is_replaced_and_writes_go_on(tmp_path: Path) -> None:
    server = Server(tmp_path / "db.sqlite3")
    writer = GroupCommitWriter(server.connect(), _Transactions(), reconnect=server.connect)
    try:
        writer.submit(lambda conn: conn.execute("CREATE TABLE t (v INTEGER)")).result()
        writer.conn.close()  # the server went away between two transactions
        server.down = True
        with pytest.raises(OutboxUnavailable, match="connection refused"):
            writer.submit(insert(1)).result()
        with pytest.raises(OutboxUnavailable, match="connection refused"):
            writer.submit(insert(2)).result()  # every group tries again
        server.down = False
        assert writer.submit(insert(3)).result() == 1
        assert writer.submit(lambda conn: conn.execute("SELECT v FROM t").fetchall()).result() == [
            (3,)
        ]
        assert server.opened == 2
    finally:
        writer.close()


def test_without_a_reconnect_factory_the_connection_is_kept(tmp_path: Path) -> None:
    server = Server(tmp_path / "db.sqlite3")
    writer = GroupCommitWriter(server.connect(), _Transactions())
    try:
        writer.conn.close()
        with pytest.raises(OutboxUnavailable, match="closed database"):
            writer.submit(insert(1)).result()
        assert server.opened == 1
    finally:
        writer.close()
