"""The durable store between the receive path and the forwarder.

One interface, documented method by method; ``gateway.outbox.sqlite`` is the embedded
implementation and ``tests/test_outbox_contract.py`` is the contract every backend must pass.
What backends share lives beside it: :mod:`gateway.outbox.codec` (how rows hold blobs:
compression, encryption, webhook and rejection rows), :mod:`gateway.outbox.common` (batch
fitting, the dedup rule, limits, the rejection buffer, console records) and
:mod:`gateway.outbox.writer` (the group-commit writer thread).

Life of an event row::

    accept() -> pending --claim()--> leased --ack()--------> delivered
                   ^                   |--release()-> pending (retry at a later time)
                   |                   '--dead_letter()--> dead
                   '----------- retry_dead() ---------------'

A lease that expires (the forwarder crashed) makes the row claimable again: delivery is
at-least-once, never at-most-once. Each claim writes an owner token into its leases and the
instance remembers it: the writes that end a lease (ack, release, unlease, dead_letter) and
``renew`` change only rows still leased under that token, so a holder whose lease ran out and
was claimed again by another instance changes nothing.

For the inspection console the store also keeps every delivery attempt's outcome (written in
the same transaction as the state change it records) and refused requests (buffered, written
with the next transaction or by :meth:`Outbox.flush_rejections`, bounded by
:meth:`Outbox.prune_rejections`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from gateway.webhook import Webhook


class OutboxUnavailable(Exception):
    """The store cannot write (disk full, read-only, locked): answer 503 so the sender retries."""


@dataclass(frozen=True)
class StoredEvent:
    """An event as the forwarder sees it."""

    seq: int  # outbox-wide order, increasing; consecutive per webhook in the SQLite backend
    webhook_id: int
    event_id: str | None  # the Inngest dedup id, if the event has one
    name: str
    payload: bytes  # the event's JSON, exactly as it will be sent
    attempts: int  # delivery attempts made before this claim
    created_at: float  # Unix seconds when accepted


@dataclass(frozen=True)
class AcceptResult:
    """What :meth:`Outbox.accept` stored."""

    webhook_id: int
    stored: int  # events stored for forwarding
    duplicates: int  # events skipped because their id was accepted within the dedup window


@dataclass(frozen=True)
class DeadLetter:
    """An event the Event API refused for good, or a webhook whose transform failed."""

    id: int  # event seq for kind "event", webhook id for kind "webhook"
    kind: str  # "event" or "webhook"
    source: str
    name: str | None
    error: str
    created_at: float
    attempts: int


@dataclass(frozen=True)
class OutboxStats:
    """Counts for ``outbox status``, ``/metrics`` and ``/readyz``."""

    pending: int  # waiting for a first attempt
    retrying: int  # attempted at least once, waiting for the next attempt
    leased: int  # claimed by a forwarder right now
    dead: int  # dead-lettered events
    quarantined: int  # webhooks whose transform failed
    delivered: int | None  # kept for the retention period; None when not counted (/metrics)
    oldest_pending_age: float  # seconds; 0.0 when nothing is pending


@dataclass(frozen=True)
class Rejection:
    """A refused webhook request, as the console shows it.

    ``headers`` are already masked and ``body`` already truncated by whoever records it;
    ``body_size`` is the size of the body that arrived (-1 when it was never read).
    """

    source: str
    provider: str
    received_at: float
    status: int
    reason: str  # the machine-readable reason: bad_signature, timestamp_out_of_range ...
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    body_size: int = -1
    request_id: str = ""
    id: int = 0  # assigned by the store


@dataclass(frozen=True)
class Answer:
    """What the Event API answered the request that decided an attempt's outcome."""

    status: int  # HTTP status; 0 when no answer came (network error, timeout)
    latency_ms: float  # from sending the request to its answer (or to giving up)


@dataclass(frozen=True)
class Attempt:
    """One recorded outcome of an event: a delivery attempt or an operator's re-queue."""

    seq: int
    at: float
    outcome: str  # "delivered", "retry" (failed, will retry), "dead", "requeued"
    error: str | None
    status: int | None = None  # the Event API's answer; None for a re-queue or an old row
    latency_ms: float | None = None


@dataclass(frozen=True)
class EventRecord:
    """An event as the console shows it, with its history."""

    seq: int
    webhook_id: int
    event_id: str | None
    name: str
    state: str  # pending, leased, delivered, dead
    attempts: int
    last_error: str | None
    created_at: float
    delivered_at: float | None
    payload: bytes
    history: tuple[Attempt, ...] = ()


@dataclass(frozen=True)
class WebhookSummary:
    """One stored webhook in the console's list.

    ``outcome`` sums up what became of it: ``quarantined``; ``dead`` when an event was
    dead-lettered; ``pending`` while an event waits; ``delivered`` when every event was;
    ``filtered`` when the transform produced none.
    """

    id: int
    source: str
    provider: str
    received_at: float
    status: str  # accepted, quarantined, resolved (replayed out of quarantine)
    outcome: str
    events: int
    event_names: tuple[str, ...]
    error: str | None


@dataclass(frozen=True)
class WebhookRecord:
    """One stored webhook in full: the request, the transform's error, its events."""

    summary: WebhookSummary
    webhook: Webhook
    detail: str | None  # the transform's traceback, for a quarantined webhook
    events: tuple[EventRecord, ...]


@dataclass(frozen=True)
class SourceCounts:
    """Per-source counts for the console's overview."""

    accepted: int = 0  # stored webhooks received in the window
    rejected: int = 0  # refused requests received in the window
    quarantined: int = 0  # webhooks held now
    dead: int = 0  # dead-lettered events now


@dataclass(frozen=True)
class ActivityBucket:
    """Webhooks per time bucket, for the overview's chart."""

    start: float
    accepted: int
    rejected: int


@runtime_checkable
class Outbox(Protocol):
    """Durable store of accepted webhooks, their events, and what became of them.

    All methods are thread-safe. The ``*_async`` variants are what the event loop uses.
    """

    def accept(
        self,
        webhook: Webhook,
        events: Sequence[bytes],
        event_ids: Sequence[str | None],
        names: Sequence[str],
        *,
        body_key: str | None = None,
    ) -> AcceptResult:
        """Durably store a verified webhook and its serialized events, atomically.

        Returns only after the write is durable at the configured level. An event whose id was
        accepted (and not dead-lettered) within the dedup window is skipped and counted. With a
        ``body_key`` (a digest of the verified body), a webhook whose key was accepted within
        the window (and whose first event was not dead-lettered since; a ``replay:`` key, a
        sender's single-use value, stays held even then) is a duplicate whole: every event of
        it is skipped and counted. Raises :class:`OutboxUnavailable` when nothing
        could be written.
        """
        ...

    async def accept_async(
        self,
        webhook: Webhook,
        events: Sequence[bytes],
        event_ids: Sequence[str | None],
        names: Sequence[str],
        *,
        body_key: str | None = None,
    ) -> AcceptResult:
        """:meth:`accept` for the event loop; concurrent calls share one commit (group commit)."""
        ...

    def quarantine(self, webhook: Webhook, error: str, detail: str) -> int:
        """Durably keep a verified webhook whose transform failed; returns its webhook id."""
        ...

    async def quarantine_async(self, webhook: Webhook, error: str, detail: str) -> int:
        """:meth:`quarantine` for the event loop."""
        ...

    def claim(
        self, *, max_events: int, max_bytes: int, lease_seconds: float, now: float | None = None
    ) -> list[StoredEvent]:
        """Lease due events in ``seq`` order, at most ``max_events`` and ``max_bytes`` of payload.

        Always returns at least one event when one is due, even if it alone exceeds
        ``max_bytes``. Leased events are not returned again until released or the lease expires.
        An event is held back while an earlier event of its webhook is leased (by any instance)
        or waiting for a retry, so one webhook's events are delivered in order.

        The instance remembers the owner token the claim wrote into each lease: :meth:`ack`,
        :meth:`release`, :meth:`unlease`, :meth:`dead_letter` and :meth:`renew` change only rows
        still leased under it. Claims by several instances (connections, processes) on one
        store are disjoint.
        """
        ...

    def renew(
        self, seqs: Sequence[int], lease_seconds: float, now: float | None = None
    ) -> set[int]:
        """Extend this instance's leases on ``seqs``; returns the seqs it still holds.

        Each lease held ends ``lease_seconds`` after ``now``. A seq is no longer held once
        another instance claimed it after this one's lease ran out (or this one ended the
        lease); such a seq is left alone and not returned.
        """
        ...

    def held_event_ids(self, event_ids: Sequence[str], now: float | None = None) -> set[str]:
        """Which of ``event_ids`` :meth:`accept` would skip as duplicates now: accepted within
        the dedup window and not dead-lettered since. Writes nothing (the backfill's lookup)."""
        ...

    def take_lease(self, name: str, holder: str, seconds: float, now: float | None = None) -> bool:
        """Hold the named lease until ``now + seconds``; False while another holder's runs.

        The holder of an unexpired lease renews it by taking it again; an expired lease goes to
        whoever takes it first. Atomic across every process sharing the store (the backfill
        reconciler runs on the replica holding ``backfill:<source>``).
        """
        ...

    def ack(self, seqs: Sequence[int], *, answer: Answer | None = None) -> None:
        """Mark events this instance holds delivered (a stale holder changes nothing).

        ``answer`` (here and below) is the Event API's answer to the request, kept with the
        attempt for the console.
        """
        ...

    def release(
        self, seqs: Sequence[int], *, retry_at: float, error: str, answer: Answer | None = None
    ) -> None:
        """Return held events for a retry no earlier than ``retry_at``; counts an attempt."""
        ...

    def dead_letter(self, seq: int, error: str, *, answer: Answer | None = None) -> None:
        """Move a held event to the dead-letter store with the Event API's error."""
        ...

    def retry_dead(self, seqs: Sequence[int] | None = None) -> int:
        """Make dead-lettered events pending again (all when ``seqs`` is None); returns how many."""
        ...

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Dead-lettered events and quarantined webhooks, newest first."""
        ...

    def quarantined(self, limit: int = 100) -> list[tuple[int, Webhook, str]]:
        """Quarantined webhooks as ``(webhook_id, webhook, error)``, oldest first."""
        ...

    def resolve_quarantined(
        self,
        webhook_id: int,
        events: Sequence[bytes],
        event_ids: Sequence[str | None],
        names: Sequence[str],
    ) -> AcceptResult:
        """Store the events a re-run transform produced and take the webhook out of quarantine."""
        ...

    def stats(self, now: float | None = None, *, delivered: bool = True) -> OutboxStats:
        """Current counts; the oldest age is that of the oldest pending, retrying or leased event.

        Delivered rows are kept for the whole dedup window, so counting them costs the most:
        with ``delivered=False`` (every ``/metrics`` scrape) they are not counted and
        :attr:`OutboxStats.delivered` is None. ``outbox status`` and the console count them.
        """
        ...

    def unlease(self, seqs: Sequence[int]) -> None:
        """Give held events back without counting an attempt."""
        ...

    def prune(self, older_than: float) -> int:
        """Delete events delivered before ``older_than`` and webhooks left without events."""
        ...

    def purge(self, states: Collection[str] | None = None, before: float | None = None) -> int:
        """Delete delivered events, dead letters and quarantined webhooks; returns rows deleted.

        ``states`` narrows it to some of :data:`PURGE_STATES`; ``before`` (Unix seconds) keeps
        rows created (webhooks: received) at or after it. Webhooks left without events go too.
        """
        ...

    # -- inspection console -------------------------------------------------------------

    def record_rejection(self, rejection: Rejection) -> None:
        """Keep a refused request without waiting for a write.

        It is written with the next transaction (sharing its commit) or by
        :meth:`flush_rejections`, whichever comes first; never blocks or raises.
        """
        ...

    def flush_rejections(self) -> None:
        """Durably write every rejection recorded so far."""
        ...

    def prune_rejections(self, older_than: float, keep: int, max_bytes: int | None = None) -> int:
        """Delete rejections received before ``older_than``, all but the newest ``keep``, and
        the oldest beyond ``max_bytes`` of stored headers and bodies. In small transactions:
        accepts must never wait behind a large prune."""
        ...

    def rejections(
        self,
        *,
        source: str | None = None,
        query: str | None = None,
        limit: int = 100,
        since: float | None = None,
        until: float | None = None,
    ) -> list[Rejection]:
        """Written rejections, newest first; ``query`` matches reason, message or request id;
        ``since <= received_at < until`` where given."""
        ...

    def rejection(self, rejection_id: int) -> Rejection | None:
        """One written rejection by id."""
        ...

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
        """Stored webhooks, newest first, received in ``[since, until)`` where given.

        ``outcome`` is one of :class:`WebhookSummary`'s outcomes; ``query`` matches a
        webhook id exactly, or part of an event id (which carries the provider's event id) or
        event name.
        """
        ...

    def webhook(self, webhook_id: int) -> WebhookRecord | None:
        """One stored webhook with its request, events and their attempt history."""
        ...

    def source_counts(self, since: float) -> dict[str, SourceCounts]:
        """Per source: webhooks accepted and refused since ``since``; held and dead now."""
        ...

    def activity(self, since: float, bucket: float = 60.0) -> list[ActivityBucket]:
        """Accepted and refused webhooks per ``bucket`` seconds from ``since``, oldest first."""
        ...

    def check_writable(self) -> None:
        """Raise :class:`OutboxUnavailable` unless a write would succeed now (for ``/readyz``)."""
        ...

    def close(self) -> None:
        """Flush pending writes and release the store."""
        ...

    def entries(self, states: Collection[str] | None = None, limit: int = 100) -> list[OutboxEntry]:
        """What the outbox holds, for ``outbox list``: oldest first, at most ``limit`` rows.

        ``states`` picks from :data:`ENTRY_STATES`; None means every state but ``delivered``
        (everything that still needs delivering or attention). Raises ``ValueError`` for an
        unknown state.
        """
        ...


#: ``pending`` (no attempt yet), ``retrying`` (attempted, waiting for ``next_attempt_at``),
#: ``leased`` (in flight), ``dead`` (dead-lettered event), ``quarantined`` (webhook whose
#: transform failed), ``delivered`` (kept for the retention period).
ENTRY_STATES = ("pending", "retrying", "leased", "dead", "quarantined", "delivered")
UNDELIVERED_STATES = ("pending", "retrying", "leased")
#: what ``outbox purge`` deletes: delivered and dead events, quarantined webhooks
PURGE_STATES = ("delivered", "dead", "quarantined")


@dataclass(frozen=True)
class OutboxEntry:
    """One row of ``outbox list``: an event, or a quarantined webhook (``kind="webhook"``).

    ``id`` is the event's seq (what ``outbox retry ID`` takes) or the webhook id (what
    ``quarantine replay ID`` takes), as in :class:`DeadLetter`.
    """

    id: int
    kind: str  # "event" or "webhook"
    state: str  # one of ENTRY_STATES
    source: str
    name: str | None  # event name; None for a webhook
    event_id: str | None  # the Inngest dedup id, if any
    webhook_id: int
    attempts: int  # delivery attempts made so far
    next_attempt_at: float | None  # pending/retrying: due time; leased: lease end; else None
    error: str  # the last error ("" if none)
    created_at: float  # Unix seconds when accepted (received, for a webhook)
