"""The SQLite outbox's read side: the console's, ``outbox list``'s and the metrics' queries.

They run on the read connection, which WAL lets run beside the writer; rows become records
through :mod:`gateway.outbox.common` and :mod:`gateway.outbox.codec`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from gateway.outbox import (
    ActivityBucket,
    Answer,
    Attempt,
    DeadLetter,
    OutboxEntry,
    OutboxStats,
    OutboxUnavailable,
    Rejection,
    SourceCounts,
    WebhookRecord,
    WebhookSummary,
    common,
)
from gateway.outbox.codec import REJECTION_COLUMNS, WEBHOOK_COLUMNS, RowCodec
from gateway.outbox.writer import GroupCommitWriter, unavailable
from gateway.webhook import Webhook

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
    WHERE (:source IS NULL OR w.source = :source) AND (:id IS NULL OR w.id = :id)
    AND (:since IS NULL OR w.received_at >= :since) AND (:until IS NULL OR w.received_at < :until)
    AND (
        :like IS NULL OR :id IS NOT NULL OR w.error LIKE :like ESCAPE '\\' OR EXISTS (
            SELECT 1 FROM events x WHERE x.webhook_id = w.id
            AND (x.event_id LIKE :like ESCAPE '\\' OR x.name LIKE :like ESCAPE '\\')))
)
WHERE :outcome IS NULL OR outcome = :outcome
ORDER BY id DESC LIMIT :limit
"""


def _marks(ids: Sequence[object]) -> str:
    return ",".join("?" * len(ids))


class SQLiteReads:
    """Read methods of :class:`gateway.outbox.sqlite.SQLiteOutbox` (a mixin)."""

    codec: RowCodec
    clock: Callable[[], float]
    _read: sqlite3.Connection
    _read_lock: threading.Lock
    _writer: GroupCommitWriter[sqlite3.Connection]

    def _read_query(self, sql: str, args: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]:
        with self._read_lock:
            if self._writer.closed:
                raise OutboxUnavailable("the outbox is closed")
            try:
                return self._read.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise unavailable(exc) from None

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
        return common.dead_letters(events, held, limit)

    def quarantined(self, limit: int = 100) -> list[tuple[int, Webhook, str]]:
        """Quarantined webhooks, rebuilt (and decrypted), oldest first."""
        rows = self._read_query(
            f"SELECT {WEBHOOK_COLUMNS}, error FROM webhooks WHERE status = 'quarantined'"
            " ORDER BY id LIMIT ?",
            (limit,),
        )
        return [(row[0], self.codec.webhook_from_row(row), row[8] or "") for row in rows]

    def stats(self, now: float | None = None) -> OutboxStats:
        """Counts by state; the oldest age runs over pending, retrying and leased events."""
        at = self.clock() if now is None else now
        return common.stats(self._read_query(_STATS)[0], at)

    def rejections(
        self,
        *,
        source: str | None = None,
        query: str | None = None,
        limit: int = 100,
        since: float | None = None,
        until: float | None = None,
    ) -> list[Rejection]:
        """Written rejections, newest first."""
        rows = self._read_query(
            f"SELECT {REJECTION_COLUMNS} FROM rejections"
            " WHERE (:source IS NULL OR source = :source) AND (:like IS NULL"
            " OR reason LIKE :like ESCAPE '\\' OR message LIKE :like ESCAPE '\\'"
            " OR request_id LIKE :like ESCAPE '\\')"
            " AND (:since IS NULL OR received_at >= :since)"
            " AND (:until IS NULL OR received_at < :until)"
            " ORDER BY id DESC LIMIT :limit",
            {
                "source": source,
                "like": common.like(query) if query else None,
                "limit": limit,
                "since": since,
                "until": until,
            },
        )
        return [self.codec.rejection_from_row(row) for row in rows]

    def rejection(self, rejection_id: int) -> Rejection | None:
        """One written rejection."""
        rows = self._read_query(
            f"SELECT {REJECTION_COLUMNS} FROM rejections WHERE id = ?", (rejection_id,)
        )
        return self.codec.rejection_from_row(rows[0]) if rows else None

    def webhooks(
        self,
        *,
        source: str | None = None,
        outcome: str | None = None,
        query: str | None = None,
        limit: int = 100,
        since: float | None = None,
        until: float | None = None,
    ) -> list[WebhookSummary]:
        """Stored webhooks with their outcome, newest first; see :class:`Outbox`."""
        text = (query or "").strip()
        rows = self._read_query(
            _SUMMARIES,
            {
                "source": source,
                "outcome": outcome,
                "id": int(text) if text.isdigit() else None,
                "like": common.like(text) if text else None,
                "limit": limit,
                "since": since,
                "until": until,
            },
        )
        return [common.summary(row) for row in rows]

    def webhook(self, webhook_id: int) -> WebhookRecord | None:
        """One webhook with its request, events and attempt history (decrypted)."""
        summary = self._read_query(
            _SUMMARIES,
            {
                "source": None,
                "outcome": None,
                "id": webhook_id,
                "like": None,
                "limit": 1,
                "since": None,
                "until": None,
            },
        )
        rows = self._read_query(
            f"SELECT {WEBHOOK_COLUMNS}, detail FROM webhooks WHERE id = ?", (webhook_id,)
        )
        if not rows or not summary:
            return None
        events = self._read_query(
            "SELECT e.seq, e.webhook_id, e.event_id, e.name, e.state, e.attempts, e.last_error,"
            " e.created_at, e.delivered_at, p.payload, e.sealed, e.delivery_status,"
            " e.delivery_ms FROM events e"
            " JOIN event_payloads p ON p.seq = e.seq WHERE e.webhook_id = ? ORDER BY e.seq",
            (webhook_id,),
        )
        history: dict[int, list[Attempt]] = {}
        for part in common.chunks([row[0] for row in events]):
            for seq, *attempt in self._read_query(
                "SELECT seq, at, outcome, error, status, latency_ms FROM attempts"
                f" WHERE seq IN ({_marks(part)}) ORDER BY id",
                part,
            ):
                history.setdefault(seq, []).append(Attempt(seq, *attempt))
        records = tuple(
            common.event_record(
                row,
                self.codec.unseal(row[9], row[10], "event.payload"),
                history,
                None if row[11] is None else Answer(row[11], row[12]),
            )
            for row in events
        )
        return WebhookRecord(
            summary=common.summary(summary[0]),
            webhook=self.codec.webhook_from_row(rows[0]),
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
        n = common.activity_buckets(since, self.clock(), bucket)
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

    def entries(self, states: Collection[str] | None = None, limit: int = 100) -> list[OutboxEntry]:
        """Rows in the given states (default: all but delivered), oldest first; see Outbox."""
        rows: list[OutboxEntry] = []
        for state in common.entry_states(states):
            if state == "quarantined":
                rows += common.held_entries(
                    self._read_query(
                        "SELECT id, source, error, received_at FROM webhooks"
                        " WHERE status = 'quarantined' ORDER BY id LIMIT ?",
                        (limit,),
                    )
                )
                continue
            events = self._read_query(
                "SELECT e.seq, e.webhook_id, w.source, e.name, e.event_id, e.attempts,"
                " CASE e.state WHEN 'pending' THEN e.next_attempt_at"
                " WHEN 'leased' THEN e.lease_until END, e.last_error, e.created_at FROM events e"
                f" LEFT JOIN webhooks w ON w.id = e.webhook_id WHERE {common.ENTRY_WHERE[state]}"
                " ORDER BY e.seq LIMIT ?",
                (limit,),
            )
            rows += common.event_entries(state, events)
        return common.oldest_entries(rows, limit)
