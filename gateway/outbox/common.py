"""What every outbox backend shares beyond the row codec: rules, limits and row building.

The batch a claim hands out (:func:`fit`), the dedup rule for a group of accepts
(:func:`plan_events`), the retry-history cap, the rejection buffer, and how query rows become
the console's records. Backends keep only their SQL and connection handling.
"""

from __future__ import annotations

import collections
import math
import secrets
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any

from gateway.outbox import (
    ENTRY_STATES,
    PURGE_STATES,
    AcceptResult,
    Answer,
    Attempt,
    DeadLetter,
    EventRecord,
    OutboxEntry,
    OutboxStats,
    Rejection,
    WebhookSummary,
)
from gateway.outbox.writer import Batchable

DEDUP_PRUNE_EVERY = 1000  # accepts between sweeps of expired dedup entries
PRUNE_CHUNK = 5000  # rows per prune transaction, so accepts interleave with a long prune
CHUNK = 500  # ids per ``IN (...)`` list
REJECTION_BUFFER = 10000  # refused requests waiting for a write; older ones are dropped
#: how a single-use replay key starts (Mailgun's signed token): unlike a body digest, it stays
#: held for the whole dedup window even once its webhook's events are dead-lettered, since the
#: body that came with it is not signed
REPLAY_KEY_PREFIX = "replay:"
#: refused requests deleted per transaction: each holds up to ~10 KB, so a chunk is a few MB
REJECTION_PRUNE_CHUNK = 500
#: retry rows kept per event: a days-long outage must not grow the history without bound
MAX_RETRY_HISTORY = 20
#: the furthest ahead of its clock a backend stores a due time. A running forwarder holds longer
#: pauses in memory on a monotonic clock; a due time further ahead than this at claim time means
#: the wall clock was stepped back, and the row is due at once instead of after the step.
MAX_DUE_AHEAD = 300.0


#: ``prune_rejections``: the newest id beyond the newest ``:keep`` rows (run in each dialect)
REJECTIONS_BY_COUNT = "SELECT id FROM rejections ORDER BY id DESC LIMIT 1 OFFSET :keep"
#: ... and the newest id beyond ``:max_bytes`` of stored headers and bodies, newest first
REJECTIONS_BY_BYTES = (
    "SELECT id FROM (SELECT id, SUM(length(headers) + length(body))"
    " OVER (ORDER BY id DESC) AS kept FROM rejections) r"
    " WHERE kept > :max_bytes ORDER BY id DESC LIMIT 1"
)
#: ... and one chunk of the rows to delete: up to ``:cutoff`` or received before ``:older_than``
REJECTIONS_PRUNE = (
    "DELETE FROM rejections WHERE id IN (SELECT id FROM rejections"
    " WHERE id <= :cutoff OR received_at < :older_than ORDER BY id LIMIT :limit)"
)


def in_chunks(chunk: Callable[[], int], size: int = PRUNE_CHUNK) -> int:
    """Run ``chunk`` (one transaction deleting at most ``size`` rows) until it deletes fewer;
    returns the total."""
    total = 0
    while True:
        gone = chunk()
        total += gone
        if gone < size:
            return total


def unstep_due(run: Callable[[str, dict[str, float]], Any], last_due: Any, at: float) -> bool:
    """At claim time: when the latest pending due time ``last_due`` is more than
    :data:`MAX_DUE_AHEAD` ahead of ``at`` (only a wall clock stepped back leaves one), make
    such rows due at ``at`` through ``run(sql, args)`` (named parameters); True if it did."""
    if last_due is None or last_due <= at + MAX_DUE_AHEAD:
        return False
    run(
        "UPDATE events SET next_attempt_at = :at"
        " WHERE state = 'pending' AND next_attempt_at > :ahead",
        {"at": at, "ahead": at + MAX_DUE_AHEAD},
    )
    return True


def purge_in_chunks(
    wanted: Collection[str],
    event_states: Sequence[str],
    events: Callable[[], int],
    webhooks: Callable[[str], Callable[[], int]],
) -> int:
    """``purge``'s order: dead and delivered events, then the webhooks they leave empty, then
    quarantined webhooks; each step a run of :func:`in_chunks` (``webhooks(condition)`` makes
    the chunk for ``status`` ``condition``)."""
    gone = 0
    if event_states:
        gone += in_chunks(events)
        gone += in_chunks(webhooks("status <> 'quarantined'"))
    if "quarantined" in wanted:
        gone += in_chunks(webhooks("status = 'quarantined'"))
    return gone


def clamp_due(retry_at: float, now: float) -> float:
    """The due time to store for a retry at ``retry_at``: at most :data:`MAX_DUE_AHEAD` ahead."""
    return min(retry_at, now + MAX_DUE_AHEAD)


#: an attempts-table row to write with a state change: ``(outcome, at, error, answer)``
History = tuple[str, float, str | None, Answer | None]
#: one webhook's events for :func:`plan_events`:
#: ``(webhook_id, [(stored payload, sealed flags)], plain sizes, event ids, names)``
EventBatch = tuple[int, list[tuple[bytes, int]], list[int], list[str | None], list[str]]

#: ``outbox list``: the condition on ``events e`` selecting each state's rows
ENTRY_WHERE = {
    "pending": "e.state = 'pending' AND e.attempts = 0",
    "retrying": "e.state = 'pending' AND e.attempts > 0",
    "leased": "e.state = 'leased'",
    "dead": "e.state = 'dead'",
    "delivered": "e.state = 'delivered'",
}


def chunks(ids: Sequence[Any]) -> list[list[Any]]:
    """``ids`` in lists of at most :data:`CHUNK` (one ``IN (...)`` list each)."""
    items = list(ids)
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]


def like(text: str) -> str:
    """A ``LIKE ... ESCAPE '\\'`` pattern matching ``text`` anywhere."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def checked(
    events: Sequence[bytes], event_ids: Sequence[str | None], names: Sequence[str]
) -> tuple[list[bytes], list[str | None], list[str]]:
    """The arguments of an accept as lists; ``ValueError`` unless they have one length."""
    if not len(events) == len(event_ids) == len(names):
        raise ValueError("events, event_ids and names must have the same length")
    return list(events), list(event_ids), list(names)


def requeue_choice(rows: Sequence[tuple[int, str | None, Any]]) -> list[int]:
    """Which dead events ``retry_dead`` queues again, from ``(seq, event_id, held)`` rows.

    ``held`` is true when the event's id was accepted again since and that copy is not dead
    (pending, leased, delivered or pruned): sending the dead one too would deliver the id twice,
    so it stays dead. Of several dead copies of one id only the newest is queued.
    """
    newest: dict[str, int] = {}
    chosen: list[int] = []
    for seq, event_id, held in rows:
        if event_id is None:
            chosen.append(seq)
        elif not held:
            newest[event_id] = max(seq, newest.get(event_id, seq))
    return sorted(chosen + list(newest.values()))


def fit(rows: list[Any], max_events: int, max_bytes: int) -> list[int]:
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


class AcceptCall(Batchable):
    """Store one webhook and its events: the receive path's write.

    ``store`` writes a run of such calls at once (the backend's multi-row insert).
    """

    __slots__ = ("body_key", "event_ids", "names", "payloads", "row", "sizes", "store")

    def __init__(
        self,
        store: Callable[[Any, Sequence[AcceptCall]], list[AcceptResult]],
        row: tuple[Any, ...],
        payloads: list[tuple[bytes, int]],
        sizes: list[int],
        event_ids: list[str | None],
        names: list[str],
        body_key: str | None = None,
    ) -> None:
        self.store = store
        self.body_key = body_key  # a verified body's digest: see Outbox.accept
        self.row = row  # the webhooks row's columns after its id (RowCodec.webhook_row)
        self.payloads = payloads  # as stored (compressed, encrypted), with each row's flags
        self.sizes = sizes  # of the plain payloads
        self.event_ids = event_ids
        self.names = names

    def run_many(self, conn: Any, calls: Sequence[Any]) -> list[AcceptResult]:
        return self.store(conn, calls)

    @property
    def stored_bytes(self) -> int:
        """Roughly what this call writes: its blobs (body, headers, payloads) as stored."""
        blobs = [v for v in self.row if isinstance(v, bytes)] + [p for p, _ in self.payloads]
        return sum(len(b) for b in blobs)


class WriteHealth:
    """Whether the store can take the receive path's writes, as the last ones showed.

    A failed accept is remembered with its size: readiness (``check_writable``) then probes
    with a write at least that large, so it reports the failure at once (a small heartbeat can
    still fit a full volume) and recovers as soon as a write of that size fits again.
    """

    PROBE_BYTES = 8192  # a heartbeat's pad when nothing failed

    def __init__(self) -> None:
        self.problem: str | None = None
        self._size = 0

    def failed(self, problem: str, size: int) -> None:
        self.problem, self._size = problem, max(self._size, size)

    def recovered(self) -> None:
        self.problem, self._size = None, 0

    @property
    def probe_bytes(self) -> int:
        return max(self.PROBE_BYTES, self._size)


def is_full(exc: BaseException) -> bool:
    """Whether a write failed for lack of space (SQLite's "database or disk is full",
    PostgreSQL's "could not extend file ... No space left on device")."""
    text = str(exc).lower()
    return "is full" in text or "no space left" in text


class EventPlan:
    """The rows a group of accepts inserts, after the dedup rule; see :func:`plan_events`."""

    __slots__ = ("counts", "dedup_rows", "event_rows", "key_rows", "payload_rows")

    def __init__(self) -> None:
        #: ``(seq, webhook_id, event_id, name, size, sealed, next_attempt_at, created_at,
        #: state)``, in :data:`EVENT_COLUMNS` order
        self.event_rows: list[tuple[Any, ...]] = []
        self.payload_rows: list[tuple[int, bytes]] = []  # (seq, payload)
        self.dedup_rows: list[tuple[str, float, int]] = []  # (event_id, first_seen, seq)
        self.counts: list[tuple[int, int]] = []  # (stored, duplicates) per webhook
        #: ``(body_key, first_seen, seq, batch index)`` of each webhook stored under a body key:
        #: the key follows the webhook's first stored event (seq 0: none, and it stays seen)
        self.key_rows: list[tuple[str, float, int, int]] = []


EVENT_COLUMNS = "seq, webhook_id, event_id, name, size, sealed, next_attempt_at, created_at, state"


def plan_events(
    batches: Sequence[EventBatch],
    seen: set[str],
    seqs: Iterator[int],
    now: float,
    dedup: bool,
    body_keys: Sequence[str | None] = (),
) -> EventPlan:
    """Which events of ``batches`` to store, with the seqs they get from ``seqs``.

    The dedup rule: an event id in ``seen`` (accepted within the dedup window and not
    dead-lettered since; the backend's query) or earlier in ``batches`` is a duplicate and
    is not stored, as if the webhooks came one by one. Events without an id always count.
    A webhook whose body key (``body_keys``, parallel to ``batches``) is so seen is a
    duplicate whole: none of its events is stored.
    """
    plan = EventPlan()
    seen = set(seen)
    keys = list(body_keys) or [None] * len(batches)
    for index, ((webhook_id, payloads, sizes, event_ids, names), key) in enumerate(
        zip(batches, keys, strict=True)
    ):
        if dedup and key is not None:
            if key in seen:
                plan.counts.append((0, len(payloads)))
                continue
            seen.add(key)
        first = 0
        stored = duplicates = 0
        for (payload, sealed), size, event_id, name in zip(
            payloads, sizes, event_ids, names, strict=True
        ):
            if dedup and event_id is not None and event_id in seen:
                duplicates += 1
                continue
            seq = next(seqs)
            first = first or seq
            if dedup and event_id is not None:
                seen.add(event_id)
                plan.dedup_rows.append((event_id, now, seq))
            plan.event_rows.append(
                (seq, webhook_id, event_id, name, size, sealed, now, now, "pending")
            )
            plan.payload_rows.append((seq, payload))
            stored += 1
        if dedup and key is not None:
            plan.key_rows.append((key, now, key_seq(key, first), index))
        plan.counts.append((stored, duplicates))
    return plan


def key_seq(key: str, first: int) -> int:
    """The seq a body key follows: its webhook's first stored event, so the key is released
    when that event is dead-lettered; 0 (held for the window) for a single-use replay key."""
    return 0 if key.startswith(REPLAY_KEY_PREFIX) else first


def wanted_ids(batches: Sequence[EventBatch], body_keys: Sequence[str | None] = ()) -> list[str]:
    """The event ids and body keys of ``batches`` to look up in the dedup table."""
    ids = [eid for batch in batches for eid in batch[3] if eid is not None]
    return ids + [key for key in body_keys if key is not None]


class Leases:
    """The lease token of each seq this outbox instance claimed and has not finished with.

    Every claim takes a fresh token and writes it into the rows it leases; the writes that end
    or extend a lease (``ack``, ``release``, ``unlease``, ``dead_letter``, ``renew``) match
    ``lease_token`` too, so a holder whose lease ran out and was claimed again by another
    instance changes nothing. Thread-safe.
    """

    def __init__(self) -> None:
        self._tokens: dict[int, str] = {}
        self._lock = threading.Lock()

    @staticmethod
    def new_token() -> str:
        return secrets.token_hex(8)

    def hold(self, seqs: Collection[int], token: str) -> None:
        with self._lock:
            self._tokens.update(dict.fromkeys(seqs, token))

    def by_token(self, seqs: Collection[int]) -> dict[str, list[int]]:
        """The held ones of ``seqs``, grouped by token (seqs this instance never held left out)."""
        groups: dict[str, list[int]] = {}
        with self._lock:
            for seq in seqs:
                token = self._tokens.get(seq)
                if token is not None:
                    groups.setdefault(token, []).append(seq)
        return groups

    def drop(self, seqs: Collection[int]) -> None:
        with self._lock:
            for seq in seqs:
                self._tokens.pop(seq, None)

    def __len__(self) -> int:
        return len(self._tokens)


class RejectionBuffer:
    """Refused requests waiting for a write, newest :data:`REJECTION_BUFFER` kept.

    ``recorded`` counts what was ever recorded, ``flushed`` what is known to be committed.
    """

    def __init__(self) -> None:
        self._rows: collections.deque[Rejection] = collections.deque(maxlen=REJECTION_BUFFER)
        self.recorded = self.flushed = 0

    def __bool__(self) -> bool:
        return bool(self._rows)

    def record(self, rejection: Rejection) -> None:
        self._rows.append(rejection)
        self.recorded += 1

    def drain(self) -> list[Rejection]:
        """Take every buffered rejection (safe against concurrent :meth:`record`)."""
        taken: list[Rejection] = []
        while self._rows:
            try:
                taken.append(self._rows.popleft())
            except IndexError:
                break
        return taken

    @property
    def unflushed(self) -> bool:
        return self.recorded > self.flushed


# -- console records --------------------------------------------------------------------


def summary(row: Sequence[Any]) -> WebhookSummary:
    """A :class:`WebhookSummary` from ``(id, source, provider, received_at, status, error,
    events, names joined by newlines, outcome)``."""
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


def answer_columns(answer: Answer | None) -> tuple[int | None, float | None]:
    """``(status, latency_ms)`` to store for ``answer``; NULLs where none was kept."""
    return (answer.status, answer.latency_ms) if answer else (None, None)


def with_delivery(
    history: list[Attempt],
    seq: int,
    state: str,
    delivered_at: float | None,
    answer: Answer | None = None,
) -> tuple[Attempt, ...]:
    """An event's recorded attempts, then its delivery (the last outcome an event can have),
    with the Event API's ``answer`` to the delivering request when it was kept.

    Stores written before deliveries were read from ``delivered_at`` hold a ``delivered`` row
    as well: it is the same delivery, shown once.
    """
    if state == "delivered" and delivered_at is not None:
        kept = [a for a in history if a.outcome != "delivered"]
        return (*kept, Attempt(seq, delivered_at, "delivered", None, *answer_columns(answer)))
    return tuple(history)


def event_record(
    row: Sequence[Any],
    payload: bytes,
    history: dict[int, list[Attempt]],
    delivery: Answer | None = None,
) -> EventRecord:
    """An :class:`EventRecord` from ``(seq, webhook_id, event_id, name, state, attempts,
    last_error, created_at, delivered_at, ...)``, its opened payload and the answer to its
    delivering request."""
    seq, wid, event_id, name, state, attempts, last_error, created_at, delivered_at = row[:9]
    return EventRecord(
        seq=seq,
        webhook_id=wid,
        event_id=event_id,
        name=name,
        state=state,
        attempts=attempts,
        last_error=last_error,
        created_at=created_at,
        delivered_at=delivered_at,
        payload=payload,
        history=with_delivery(history.get(seq, []), seq, state, delivered_at, delivery),
    )


def dead_letters(
    events: Sequence[Sequence[Any]], held: Sequence[Sequence[Any]], limit: int
) -> list[DeadLetter]:
    """Dead events ``(seq, source, name, error, created_at, attempts)`` and quarantined
    webhooks ``(id, source, error, received_at)`` together, newest first."""
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


def stats(row: Sequence[Any], at: float) -> OutboxStats:
    """:class:`OutboxStats` from ``(pending, retrying, leased, dead, quarantined, delivered or
    None when not counted, oldest created_at or None)``."""
    pending, retrying, leased, dead, quarantined, delivered, oldest = row
    return OutboxStats(
        pending=pending,
        retrying=retrying,
        leased=leased,
        dead=dead,
        quarantined=quarantined,
        delivered=delivered,
        oldest_pending_age=max(0.0, at - oldest) if oldest is not None else 0.0,
    )


def entry_states(states: Collection[str] | None) -> list[str]:
    """The states ``outbox list`` asked for (default: all but delivered), each once."""
    wanted = [s for s in ENTRY_STATES if s != "delivered"] if states is None else list(states)
    unknown = sorted(set(wanted) - set(ENTRY_STATES))
    if unknown:
        raise ValueError(f"unknown state {', '.join(unknown)}; one of {', '.join(ENTRY_STATES)}")
    return list(dict.fromkeys(wanted))


def held_entries(rows: Sequence[Sequence[Any]]) -> list[OutboxEntry]:
    """Quarantined webhooks ``(id, source, error, received_at)`` as ``outbox list`` rows."""
    return [
        OutboxEntry(wid, "webhook", "quarantined", src, None, None, wid, 0, None, err or "", at)
        for wid, src, err, at in rows
    ]


def event_entries(state: str, rows: Sequence[Sequence[Any]]) -> list[OutboxEntry]:
    """Events ``(seq, webhook_id, source, name, event_id, attempts, due, error, created_at)``
    in ``state`` as ``outbox list`` rows."""
    return [
        OutboxEntry(seq, "event", state, src or "", name, eid, wid, n, due, err or "", at)
        for seq, wid, src, name, eid, n, due, err, at in rows
    ]


def oldest_entries(rows: list[OutboxEntry], limit: int) -> list[OutboxEntry]:
    rows.sort(key=lambda r: (r.created_at, r.kind, r.id))
    return rows[:limit]


def activity_buckets(since: float, now: float, bucket: float) -> int:
    """How many ``bucket``-second buckets run from ``since`` to ``now`` (at least one)."""
    if bucket <= 0:
        raise ValueError("bucket must be positive")
    return max(1, math.ceil((now - since) / bucket))


def purge_plan(
    states: Collection[str] | None, before: float | None
) -> tuple[set[str], float, list[str]]:
    """What ``purge(states, before)`` deletes: the states, the cut-off time (infinite for
    none) and the event states among them; ``ValueError`` for a state it cannot purge."""
    wanted = set(PURGE_STATES if states is None else states)
    unknown = sorted(wanted - set(PURGE_STATES))
    if unknown:
        raise ValueError(f"cannot purge {', '.join(unknown)}; one of {PURGE_STATES}")
    cutoff = math.inf if before is None else before
    return wanted, cutoff, [s for s in ("delivered", "dead") if s in wanted]
