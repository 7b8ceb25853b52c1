"""The SQLite outbox's read side: the shared queries (:mod:`gateway.outbox.reads`) in SQLite's
dialect, on the read connection, which WAL lets run beside the writer."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.outbox import OutboxUnavailable
from gateway.outbox.reads import Dialect, OutboxReads
from gateway.outbox.writer import GroupCommitWriter, unavailable

#: ``INDEXED BY``: each state's rows through that state's partial index, however many delivered
#: rows the retention period keeps around
SQLITE = Dialect(
    param=lambda name: f":{name}",
    names="SELECT group_concat(name, char(10)) FROM"
    " (SELECT name FROM events e WHERE e.webhook_id = w.id ORDER BY seq)",
    bucket="CAST((received_at - :since) / :bucket AS INTEGER)",
    hints={
        "pending": "INDEXED BY events_pending",
        "leased": "INDEXED BY events_leased",
        "received": "INDEXED BY webhooks_received",
    },
)


def _marks(ids: Sequence[object]) -> str:
    return ",".join("?" * len(ids))


class SQLiteReads(OutboxReads):
    """Read methods of :class:`gateway.outbox.sqlite.SQLiteOutbox` (a mixin)."""

    dialect = SQLITE
    _read: sqlite3.Connection
    _read_lock: threading.Lock
    _writer: GroupCommitWriter[sqlite3.Connection]

    def _read_query(self, sql: str, args: Mapping[str, Any] | None = None) -> list[Any]:
        with self._read_lock:
            if self._writer.closed:
                raise OutboxUnavailable("the outbox is closed")
            try:
                return self._read.execute(sql, args or {}).fetchall()
            except sqlite3.Error as exc:
                raise unavailable(exc) from None
