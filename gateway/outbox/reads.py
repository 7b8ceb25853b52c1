"""The read side every backend shares: the console's, ``outbox list``'s and the metrics' queries.

The SQL is written once, with ``:name`` parameters and ``{hint}`` slots; a :class:`Dialect`
turns it into one backend's SQL (its parameter style, SQLite's ``INDEXED BY`` hints, how names
are joined and times bucketed). Rows become records through :mod:`gateway.outbox.common` and
:mod:`gateway.outbox.codec`. A backend mixes :class:`OutboxReads` in and gives it
``_read_query``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.outbox import (
    ActivityBucket,
    Answer,
    Attempt,
    DeadLetter,
    OutboxEntry,
    OutboxStats,
    Rejection,
    SourceCounts,
    WebhookRecord,
    WebhookSummary,
    common,
)
from gateway.outbox.codec import REJECTION_COLUMNS, WEBHOOK_COLUMNS, RowCodec
from gateway.webhook import Webhook

_PARAM = re.compile(r"(?<![:\w]):([a-z_]+)")


@dataclass(frozen=True)
class Dialect:
    """How one backend writes what the shared queries need.

    ``param`` turns a parameter name into the driver's placeholder; ``hints`` fills the
    ``{hint}`` slots (SQLite's ``INDEXED BY`` clauses; empty where the planner needs none);
    ``names`` joins one webhook's event names with newlines, in seq order, from ``events e``
    where ``e.webhook_id = w.id``; ``bucket`` is the integer bucket of ``received_at``.
    """

    param: Callable[[str], str]
    names: str
    bucket: str
    hints: Mapping[str, str] = field(default_factory=dict)
    _cache: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def sql(self, text: str) -> str:
        done = self._cache.get(text)
        if done is None:
            slots = {slot: self.hints.get(slot, "") for slot in _SLOTS}
            done = _PARAM.sub(lambda m: self.param(m.group(1)), text.format(**slots))
            self._cache[text] = done
        return done


_SLOTS = ("pending", "leased", "received")

# The oldest waiting event is taken as the lowest seq: seqs grow with acceptance time, and an
# index lookup beats a scan of a large backlog at every metrics scrape.
_STATS = """
SELECT
    (SELECT COUNT(*) FROM events {pending} WHERE state = 'pending' AND attempts = 0),
    (SELECT COUNT(*) FROM events {pending} WHERE state = 'pending' AND attempts > 0),
    (SELECT COUNT(*) FROM events WHERE state = 'leased'),
    (SELECT COUNT(*) FROM events WHERE state = 'dead'),
    (SELECT COUNT(*) FROM webhooks WHERE status = 'quarantined'),
    ({delivered}),
    (SELECT MIN(created_at) FROM events WHERE seq IN (
        (SELECT MIN(seq) FROM events WHERE state = 'pending'),
        (SELECT MIN(seq) FROM events {leased} WHERE state = 'leased')))
"""
# Delivered rows are kept for the whole dedup window, so this is by far the largest count: only
# ``outbox status`` and the console ask for it, never a metrics scrape (see OutboxReads.stats).
_STATS_ALL = _STATS.replace("{delivered}", "SELECT COUNT(*) FROM events WHERE state = 'delivered'")
_STATS_UNDELIVERED = _STATS.replace("{delivered}", "SELECT NULL")
# One row per stored webhook with what became of its events (see WebhookSummary.outcome);
# the conditions (``{where}``) are only those a caller asked for.
_SUMMARIES = """
SELECT * FROM (
    SELECT w.id, w.source, w.provider, w.received_at, w.status, w.error,
        (SELECT COUNT(*) FROM events e WHERE e.webhook_id = w.id) AS n,
        ({names}) AS names,
        CASE
            WHEN w.status = 'quarantined' THEN 'quarantined'
            WHEN EXISTS (SELECT 1 FROM events e WHERE e.webhook_id = w.id AND e.state = 'dead')
                THEN 'dead'
            WHEN EXISTS (SELECT 1 FROM events e WHERE e.webhook_id = w.id
                AND e.state IN ('pending', 'leased')) THEN 'pending'
            WHEN EXISTS (SELECT 1 FROM events e WHERE e.webhook_id = w.id) THEN 'delivered'
            ELSE 'filtered'
        END AS outcome
    FROM webhooks w WHERE {where}
) AS summaries
WHERE {outcome}
ORDER BY id DESC LIMIT :limit
"""
_MATCHES = (
    "(w.error LIKE :like ESCAPE '\\' OR EXISTS (SELECT 1 FROM events x WHERE x.webhook_id = w.id"
    " AND (x.event_id LIKE :like ESCAPE '\\' OR x.name LIKE :like ESCAPE '\\')))"
)


class OutboxReads:
    """Read methods of an outbox (a mixin); see :class:`gateway.outbox.Outbox`."""

    codec: RowCodec
    clock: Callable[[], float]
    dialect: Dialect

    def _read_query(self, sql: str, args: Mapping[str, Any] | None = None) -> list[Any]:
        """Rows of ``sql`` (already in the backend's dialect) on a read connection."""
        raise NotImplementedError

    def _rows(self, sql: str, **args: Any) -> list[Any]:
        return self._read_query(self.dialect.sql(sql), args)

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Dead events and quarantined webhooks, newest first."""
        events = self._rows(
            "SELECT e.seq, w.source, e.name, e.last_error, e.created_at, e.attempts"
            " FROM events e LEFT JOIN webhooks w ON w.id = e.webhook_id"
            " WHERE e.state = 'dead' ORDER BY e.seq DESC LIMIT :limit",
            limit=limit,
        )
        held = self._rows(
            "SELECT id, source, error, received_at FROM webhooks WHERE status = 'quarantined'"
            " ORDER BY id DESC LIMIT :limit",
            limit=limit,
        )
        return common.dead_letters(events, held, limit)

    def quarantined(self, limit: int = 100) -> list[tuple[int, Webhook, str]]:
        """Quarantined webhooks, rebuilt (and decrypted), oldest first."""
        rows = self._rows(
            f"SELECT {WEBHOOK_COLUMNS}, error FROM webhooks WHERE status = 'quarantined'"
            " ORDER BY id LIMIT :limit",
            limit=limit,
        )
        return [(row[0], self.codec.webhook_from_row(row), row[8] or "") for row in rows]

    def stats(self, now: float | None = None, *, delivered: bool = True) -> OutboxStats:
        """Counts by state; the oldest age runs over pending, retrying and leased events.

        ``delivered=False`` skips counting delivered rows (``delivered`` is then None).
        """
        at = self.clock() if now is None else now
        return common.stats(self._rows(_STATS_ALL if delivered else _STATS_UNDELIVERED)[0], at)

    def rejections(
        self,
        *,
        source: str | None = None,
        query: str | None = None,
        limit: int = 100,
        since: float | None = None,
        until: float | None = None,
    ) -> list[Rejection]:
        """Written rejections, newest first, received in ``[since, until)`` where given."""
        where = ["1 = 1", *_received_in("received_at", since, until)]
        if source is not None:
            where.append("source = :source")
        if query:
            where.append(
                "(reason LIKE :like ESCAPE '\\' OR message LIKE :like ESCAPE '\\'"
                " OR request_id LIKE :like ESCAPE '\\')"
            )
        rows = self._rows(
            f"SELECT {REJECTION_COLUMNS} FROM rejections WHERE {' AND '.join(where)}"
            " ORDER BY id DESC LIMIT :limit",
            source=source,
            like=common.like(query) if query else None,
            limit=limit,
            since=since,
            until=until,
        )
        return [self.codec.rejection_from_row(row) for row in rows]

    def rejection(self, rejection_id: int) -> Rejection | None:
        """One written rejection."""
        rows = self._rows(
            f"SELECT {REJECTION_COLUMNS} FROM rejections WHERE id = :id", id=rejection_id
        )
        return self.codec.rejection_from_row(rows[0]) if rows else None

    def _summaries(
        self,
        *,
        source: str | None = None,
        outcome: str | None = None,
        webhook_id: int | None = None,
        like: str | None = None,
        limit: int,
        since: float | None = None,
        until: float | None = None,
    ) -> list[Any]:
        where = ["1 = 1", *_received_in("w.received_at", since, until)]
        if source is not None:
            where.append("w.source = :source")
        if webhook_id is not None:
            where.append("w.id = :id")
        elif like is not None:
            where.append(_MATCHES)
        sql = _SUMMARIES.replace("{where}", " AND ".join(where))
        sql = sql.replace("{outcome}", "outcome = :outcome" if outcome else "1 = 1")
        sql = sql.replace("{names}", self.dialect.names)
        return self._rows(
            sql,
            source=source,
            outcome=outcome,
            id=webhook_id,
            like=like,
            limit=limit,
            since=since,
            until=until,
        )

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
        rows = self._summaries(
            source=source,
            outcome=outcome,
            webhook_id=int(text) if text.isdigit() and len(text) < 19 else None,
            like=common.like(text) if text else None,
            limit=limit,
            since=since,
            until=until,
        )
        return [common.summary(row) for row in rows]

    def webhook(self, webhook_id: int) -> WebhookRecord | None:
        """One webhook with its request, events and attempt history (decrypted)."""
        summary = self._summaries(webhook_id=webhook_id, limit=1)
        rows = self._rows(
            f"SELECT {WEBHOOK_COLUMNS}, detail FROM webhooks WHERE id = :id", id=webhook_id
        )
        if not rows or not summary:
            return None
        events = self._rows(
            "SELECT e.seq, e.webhook_id, e.event_id, e.name, e.state, e.attempts, e.last_error,"
            " e.created_at, e.delivered_at, p.payload, e.sealed, e.delivery_status,"
            " e.delivery_ms FROM events e"
            " JOIN event_payloads p ON p.seq = e.seq WHERE e.webhook_id = :id ORDER BY e.seq",
            id=webhook_id,
        )
        history: dict[int, list[Attempt]] = {}
        for seq, *attempt in self._rows(
            "SELECT a.seq, a.at, a.outcome, a.error, a.status, a.latency_ms FROM attempts a"
            " JOIN events e ON e.seq = a.seq WHERE e.webhook_id = :id ORDER BY a.id",
            id=webhook_id,
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
            "accepted": "SELECT source, COUNT(*) FROM webhooks {received}"
            " WHERE status <> 'quarantined' AND received_at >= :since GROUP BY source",
            "rejected": "SELECT source, COUNT(*) FROM rejections WHERE received_at >= :since"
            " GROUP BY source",
            "quarantined": "SELECT source, COUNT(*) FROM webhooks WHERE status = 'quarantined'"
            " GROUP BY source",
            "dead": "SELECT w.source, COUNT(*) FROM events e JOIN webhooks w"
            " ON w.id = e.webhook_id WHERE e.state = 'dead' GROUP BY w.source",
        }
        for key, sql in queries.items():
            for source, n in self._rows(sql, since=since):
                counts.setdefault(source, {})[key] = n
        return {source: SourceCounts(**values) for source, values in sorted(counts.items())}

    def activity(self, since: float, bucket: float = 60.0) -> list[ActivityBucket]:
        """Per-bucket counts from ``since`` to now (the store's clock), oldest first."""
        n = common.activity_buckets(since, self.clock(), bucket)
        accepted = [0] * n
        rejected = [0] * n
        b = self.dialect.bucket
        for sql, into in (
            (
                f"SELECT {b} AS b, COUNT(*) FROM webhooks {{received}}"
                " WHERE status <> 'quarantined' AND received_at >= :since GROUP BY b",
                accepted,
            ),
            (
                f"SELECT {b} AS b, COUNT(*) FROM webhooks WHERE status = 'quarantined'"
                " AND received_at >= :since GROUP BY b",
                accepted,
            ),
            (
                f"SELECT {b} AS b, COUNT(*) FROM rejections WHERE received_at >= :since GROUP BY b",
                rejected,
            ),
        ):
            for index, count in self._rows(sql, since=since, bucket=bucket):
                into[min(int(index), n - 1)] += count
        return [ActivityBucket(since + i * bucket, accepted[i], rejected[i]) for i in range(n)]

    def entries(self, states: Collection[str] | None = None, limit: int = 100) -> list[OutboxEntry]:
        """Rows in the given states (default: all but delivered), oldest first; see Outbox."""
        rows: list[OutboxEntry] = []
        for state in common.entry_states(states):
            if state == "quarantined":
                rows += common.held_entries(
                    self._rows(
                        "SELECT id, source, error, received_at FROM webhooks"
                        " WHERE status = 'quarantined' ORDER BY id LIMIT :limit",
                        limit=limit,
                    )
                )
                continue
            events = self._rows(
                "SELECT e.seq, e.webhook_id, w.source, e.name, e.event_id, e.attempts,"
                " CASE e.state WHEN 'pending' THEN e.next_attempt_at"
                " WHEN 'leased' THEN e.lease_until END, e.last_error, e.created_at FROM events e"
                f" LEFT JOIN webhooks w ON w.id = e.webhook_id WHERE {common.ENTRY_WHERE[state]}"
                " ORDER BY e.seq LIMIT :limit",
                limit=limit,
            )
            rows += common.event_entries(state, events)
        return common.oldest_entries(rows, limit)


def _received_in(column: str, since: float | None, until: float | None) -> list[str]:
    """Conditions keeping ``since <= column < until``, for the bounds given."""
    where = []
    if since is not None:
        where.append(f"{column} >= :since")
    if until is not None:
        where.append(f"{column} < :until")
    return where
