"""The SQLite outbox's retention: prune, purge and the refused-request store's pruning.

Prune and purge work in chunks of :data:`~gateway.outbox.common.PRUNE_CHUNK` rows, each its own
transaction through the group-commit writer, so a running gateway's accepts and claims go on
between them.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Collection
from typing import TypeVar

from gateway.outbox import PURGE_STATES
from gateway.outbox.base import WriterOutbox
from gateway.outbox.common import (
    PRUNE_CHUNK,
    REJECTION_PRUNE_CHUNK,
    REJECTIONS_BY_BYTES,
    REJECTIONS_BY_COUNT,
    REJECTIONS_PRUNE,
    chunks,
    in_chunks,
    purge_in_chunks,
)
from gateway.outbox.sqlite_read import _marks

T = TypeVar("T")

# a webhook (alias w) left without events
_NO_EVENTS = " AND NOT EXISTS (SELECT 1 FROM events e WHERE e.webhook_id = w.id)"


class SQLiteRetention(WriterOutbox[sqlite3.Connection]):
    """Retention methods of :class:`gateway.outbox.sqlite.SQLiteOutbox` (a mixin)."""

    def _prune_dedup(self, conn: sqlite3.Connection) -> None:
        raise NotImplementedError

    def prune_rejections(self, older_than: float, keep: int, max_bytes: int | None = None) -> int:
        """Delete rejections older than ``older_than``, beyond the newest ``keep``, and the
        oldest beyond ``max_bytes`` of stored headers and bodies; in small transactions, so
        accepts never wait behind a large prune."""

        def before(conn: sqlite3.Connection) -> int:
            # the newest id to delete: by count, and by the bytes the newer rows hold
            (by_count,) = conn.execute(REJECTIONS_BY_COUNT, {"keep": max(0, keep)}).fetchone() or (
                0,
            )
            by_bytes = 0
            if max_bytes is not None:
                row = conn.execute(REJECTIONS_BY_BYTES, {"max_bytes": max_bytes}).fetchone()
                by_bytes = row[0] if row else 0
            return max(by_count, by_bytes)

        window = {"cutoff": self._call(before), "older_than": older_than}
        return self._in_chunks(
            lambda conn: (
                conn.execute(REJECTIONS_PRUNE, {**window, "limit": REJECTION_PRUNE_CHUNK}).rowcount
            ),
            REJECTION_PRUNE_CHUNK,
        )

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
                    (older_than, PRUNE_CHUNK),
                )
            ]
            for part in chunks(seqs):
                conn.execute(f"DELETE FROM attempts WHERE seq IN ({_marks(part)})", part)
            gone = len(seqs)
            return (
                gone
                + conn.execute(
                    "DELETE FROM webhooks WHERE id IN (SELECT id FROM webhooks w"
                    f" WHERE status <> 'quarantined' AND received_at < ?{_NO_EVENTS} LIMIT ?)",
                    (older_than, PRUNE_CHUNK),
                ).rowcount
            )

        total = self._in_chunks(chunk)
        self._call(self._prune_dedup)
        return total

    def purge(self, states: Collection[str] | None = None, before: float | None = None) -> int:
        """Delete rows in ``states`` (default: all of :data:`PURGE_STATES`); see Outbox.

        Works in chunks of :data:`PRUNE_CHUNK` rows, each its own transaction (as
        :meth:`prune`), so a running gateway's accepts and claims go on between them.
        """
        wanted = set(PURGE_STATES if states is None else states)
        unknown = sorted(wanted - set(PURGE_STATES))
        if unknown:
            raise ValueError(f"cannot purge {', '.join(unknown)}; one of {PURGE_STATES}")
        cutoff = math.inf if before is None else before
        event_states = [s for s in ("delivered", "dead") if s in wanted]

        def events(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                "DELETE FROM events WHERE seq IN (SELECT seq FROM events"
                f" WHERE state IN ({_marks(event_states)}) AND created_at < ? LIMIT ?)"
                " RETURNING seq, event_id, state",
                (*event_states, cutoff, PRUNE_CHUNK),
            ).fetchall()
            for part in chunks([seq for seq, _, _ in rows]):
                conn.execute(f"DELETE FROM attempts WHERE seq IN ({_marks(part)})", part)
            # a purged dead event no longer blocks its id from being accepted again
            conn.executemany(
                "DELETE FROM dedup WHERE event_id = ? AND seq = ?",
                [(eid, seq) for seq, eid, state in rows if state == "dead" and eid is not None],
            )
            return len(rows)

        def webhooks(status: str) -> Callable[[sqlite3.Connection], int]:
            empty = "" if status == "quarantined" else _NO_EVENTS
            return lambda conn: (
                conn.execute(
                    f"DELETE FROM webhooks WHERE id IN (SELECT id FROM webhooks w WHERE {status}"
                    f" AND received_at < ?{empty} LIMIT ?)",
                    (cutoff, PRUNE_CHUNK),
                ).rowcount
            )

        return purge_in_chunks(
            wanted,
            event_states,
            lambda: self._call(events),
            lambda status: lambda: self._call(webhooks(status)),
        )

    def _in_chunks(
        self, chunk: Callable[[sqlite3.Connection], int], size: int = PRUNE_CHUNK
    ) -> int:
        """Run ``chunk`` (deleting at most ``size`` rows) as its own transaction until it
        deletes fewer; returns the total."""
        return in_chunks(lambda: self._call(chunk), size)

    def make_room(self) -> int:
        """On a full volume: delete the oldest refused requests and delivered events (a chunk
        of each, however recent), so accepted webhooks get the space; returns rows deleted."""

        def job(conn: sqlite3.Connection) -> int:
            gone = conn.execute(
                "DELETE FROM rejections WHERE id IN"
                " (SELECT id FROM rejections ORDER BY id LIMIT ?)",
                (PRUNE_CHUNK,),
            ).rowcount
            seqs = [
                row[0]
                for row in conn.execute(
                    "DELETE FROM events WHERE seq IN (SELECT seq FROM events"
                    " WHERE state = 'delivered' ORDER BY delivered_at LIMIT ?) RETURNING seq",
                    (PRUNE_CHUNK,),
                )
            ]
            for part in chunks(seqs):
                conn.execute(f"DELETE FROM attempts WHERE seq IN ({_marks(part)})", part)
            return (
                gone
                + len(seqs)
                + conn.execute(
                    "DELETE FROM webhooks WHERE id IN (SELECT id FROM webhooks w"
                    f" WHERE status <> 'quarantined'{_NO_EVENTS} LIMIT ?)",
                    (PRUNE_CHUNK,),
                ).rowcount
            )

        return self._call(job)
