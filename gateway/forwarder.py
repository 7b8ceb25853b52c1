"""Drain the outbox into the Event API: batching, retries, splitting, dead letters.

Policy by outcome of a request:

- accepted: ack every event; a degraded state is cleared.
- network error or 5xx: release the batch and pause the whole forwarder for an exponential
  back-off (``backoff_base * 2**failures`` capped at ``backoff_max``, full jitter, never below
  ``backoff_base``). Never dropped, retried forever: the batch goes first again when the pause
  ends, so order survives an outage.
- 429: release, and pause the whole forwarder for ``Retry-After`` or the back-off, whichever
  is longer (a ``Retry-After`` of 0 or a date in the past never shortens the back-off).
- 413 / oversize 400: ack what the API took, split the rest in halves; a single event that is
  still too large is dead-lettered.
- other 400: ack the events the API accepted before the bad one, send the event it stopped at
  alone (dead-lettered with the API's error if refused again), then deliver the rest. If the
  suspect passes alone the API's hint was wrong, and the rest is bisected.
- 401/403/404: release everything, set :attr:`Forwarder.degraded` (``/readyz`` shows it), log an
  alarm, pause for ``backoff_max`` and try again. Cleared by the next accepted batch.
- an answer that is not the Event API's (a 2xx without one id per event, a non-JSON 400: a proxy
  or a wrong base URL): a server error as above, and :attr:`Forwarder.degraded` says why.

An event over ``max_event_bytes`` is dead-lettered before any request is made (the receive path
quarantines such webhooks at ingest; this catches events stored before the limit was lowered).

While a step runs (one slow request, or several for a 413 split or a 400 bisection) the
forwarder renews its lease on the events it still holds every third of ``lease_seconds``, so no
other forwarder on the same outbox claims and sends them meanwhile. An event whose lease was
lost anyway (the process stalled past the lease) is left to whoever claimed it.
"""

from __future__ import annotations

import asyncio
import functools
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from gateway.config import ForwarderConfig
from gateway.eventapi import (
    BadRequest,
    EventApiClient,
    RateLimited,
    SendError,
    TooLarge,
    Unauthorized,
    UnexpectedAnswer,
    batch_size,
    event_id_seed,
)
from gateway.logs import get_logger
from gateway.outbox import Answer, Outbox, StoredEvent

MAX_RETRY_AFTER = 3600.0  # a Retry-After beyond an hour is treated as an hour
PRUNE_EVERY = 60.0
RENEW_FRACTION = 1 / 3  # renew held leases after this share of lease_seconds


class ForwarderMetrics(Protocol):
    """What the forwarder reports; :class:`gateway.metrics.Metrics` implements it."""

    def forwarded_events(self, n: int) -> None:
        """``n`` events were accepted by the Event API."""

    def attempt(self, status_class: str) -> None:
        """One request was made; ``2xx``, ``429``, ``5xx``, ``network``..."""

    def failure(self, status_class: str) -> None:
        """One request failed."""

    def batch(self, size_events: int, size_bytes: int) -> None:
        """One request carried ``size_events`` events in ``size_bytes`` bytes."""

    def dead_lettered(self, n: int) -> None:
        """``n`` events were dead-lettered."""

    def set_degraded(self, degraded: bool) -> None:
        """The Event API refuses (or accepts again) the event key."""


class NullMetrics:
    """A :class:`ForwarderMetrics` that records nothing."""

    def forwarded_events(self, n: int) -> None:
        return None

    def attempt(self, status_class: str) -> None:
        return None

    def failure(self, status_class: str) -> None:
        return None

    def batch(self, size_events: int, size_bytes: int) -> None:
        return None

    def dead_lettered(self, n: int) -> None:
        return None

    def set_degraded(self, degraded: bool) -> None:
        return None


def batch_seed(events: Sequence[StoredEvent]) -> str:
    """The ``x-inngest-event-id-seed`` of a stored batch: fixed by its first event."""
    first = events[0]
    salt = (first.event_id or "").encode() or first.payload
    return event_id_seed(first.seq, first.created_at, salt)


class Forwarder:
    """Background task that delivers the outbox's events in batches, in ``seq`` order."""

    def __init__(
        self,
        outbox: Outbox,
        client: EventApiClient,
        config: ForwarderConfig,
        *,
        metrics: ForwarderMetrics | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        retention: float = 3 * 86400.0,
    ) -> None:
        self.outbox = outbox
        self.client = client
        self.config = config
        self.metrics: ForwarderMetrics = metrics or NullMetrics()
        self.clock = clock  # wall time: what the outbox stores (due times, leases)
        self.monotonic = monotonic  # in-memory pauses: a stepped wall clock cannot stretch them
        self.sleep = sleep
        self.rng = rng
        self.retention = retention
        #: why the Event API refuses the key, e.g. "event API answered 401: Event key not found"
        self.degraded: str | None = None
        #: no request before this time (on :attr:`monotonic`): a 429, an outage or a refused key
        self.paused_until = -math.inf
        self.log = get_logger()
        self._failures = 0  # consecutive failed requests: the back-off exponent
        self._errors = 0  # consecutive unexpected exceptions
        self._next_prune = -math.inf
        self._inflight: set[int] = set()  # leased by this forwarder, outcome not yet stored
        self._lost: set[int] = set()  # leases another forwarder took over during this step
        self._small_batch = False  # the last batch used under half of both batch limits
        self._wake = asyncio.Event()

    # -- scheduling ---------------------------------------------------------------------------

    def notify(self) -> None:
        """New events were stored: start a batch now instead of at the next poll."""
        self._wake.set()

    def backoff(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failures (0 = the first)."""
        cap = min(self.config.backoff_max, self.config.backoff_base * 2.0 ** min(failures, 60))
        return max(min(self.config.backoff_base, cap), cap * self.rng())

    @property
    def paused(self) -> bool:
        return self.paused_until > self.monotonic()

    def _pause(self, seconds: float) -> float:
        """Pause for ``seconds`` (or longer, if already paused); returns when it ends in wall
        time, for the outbox's due times."""
        now = self.monotonic()
        self.paused_until = max(self.paused_until, now + seconds)
        return self.clock() + (self.paused_until - now)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; unexpected errors are logged and retried, never raised."""
        while not stop.is_set():
            pause = self.paused_until - self.monotonic()
            if pause > 0:
                await self._sleep(stop, pause, wakeable=False)
                continue
            self._wake.clear()  # a notify() from now on starts the next batch
            try:
                claimed = await self.step()
                await self._maybe_prune()
            except Exception:
                wait = self.backoff(self._errors)
                self._errors += 1
                self.log.exception("forwarder error; backing off", extra={"retry_in": wait})
                await self._sleep(stop, wait, wakeable=False)
                continue
            self._errors = 0
            if not claimed:
                await self._sleep(stop, self.config.idle_poll, wakeable=True)
            elif self._small_batch and self.config.batch_linger > 0 and not self.paused:
                # Everything due fitted in a small batch: let webhooks gather for a moment
                # instead of spending a request (and two outbox commits) on each few. A backlog
                # fills its batches past half the limits, so it is sent without a pause.
                await self._sleep(stop, self.config.batch_linger, wakeable=False)

    async def _sleep(self, stop: asyncio.Event, seconds: float, *, wakeable: bool) -> None:
        """``self.sleep(seconds)``, cut short by ``stop`` (and by :meth:`notify` if wakeable)."""
        waiters = [asyncio.ensure_future(self.sleep(seconds)), asyncio.ensure_future(stop.wait())]
        if wakeable:
            waiters.append(asyncio.ensure_future(self._wake.wait()))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def _maybe_prune(self) -> None:
        if self.monotonic() >= self._next_prune:
            self._next_prune = self.monotonic() + PRUNE_EVERY
            await asyncio.to_thread(self.outbox.prune, self.clock() - self.retention)

    async def drain(self, deadline: float) -> int:
        """Send due events until none are due or ``deadline`` (Unix time) passes.

        For a graceful shutdown: returns how many events were claimed. A batch cut off by the
        deadline is given back (not counted as an attempt) so the next start sends it at once;
        a paused forwarder (429, outage, refused key) sends nothing more.
        """
        claimed_total = 0
        end = self.monotonic() + (deadline - self.clock())
        while not self.paused:
            remaining = end - self.monotonic()
            if remaining <= 0:
                break
            try:
                claimed = await asyncio.wait_for(self.step(), timeout=remaining)
            except TimeoutError:
                self.log.warning("shutdown deadline reached; undelivered events stay queued")
                break
            except Exception:
                self.log.exception("forwarder error during drain")
                break
            if not claimed:
                break
            claimed_total += claimed
        return claimed_total

    # -- one batch ----------------------------------------------------------------------------

    async def step(self) -> int:
        """Claim and send one batch; returns how many events were claimed (0: none due)."""
        limit, max_events = self.config.max_batch_bytes, self.config.max_batch_events
        # claim() counts payload bytes only: leave room for "[", "]" and a comma per event.
        budget = limit - 1 - max_events
        batch = await asyncio.to_thread(
            self.outbox.claim,
            max_events=max_events,
            max_bytes=budget if budget >= limit // 2 else max(1, limit - 2),
            lease_seconds=self.config.lease_seconds,
            now=self.clock(),
        )
        if not batch:
            return 0
        self._inflight.update(e.seq for e in batch)
        self._lost.clear()
        keeper = asyncio.create_task(self._keep_leases())
        try:
            keep, size = len(batch), batch_size([e.payload for e in batch])
            while keep > 1 and size > limit:  # only with a tiny max_batch_bytes
                keep -= 1
                size -= len(batch[keep].payload) + 1
            self._small_batch = 2 * keep <= max_events and 2 * size <= limit
            if keep < len(batch):
                await self._unlease(batch[keep:])
            sendable: list[StoredEvent] = []
            for event in batch[:keep]:
                if len(event.payload) > self.config.max_event_bytes:
                    await self._dead_letter(
                        event,
                        f"event is {len(event.payload)} bytes, over the per-event limit of "
                        f"{self.config.max_event_bytes} (forwarder.max_event_bytes)",
                    )
                else:
                    sendable.append(event)
            if sendable:
                await self._deliver(sendable)
            return keep
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            if self._inflight:
                await self._give_back()

    async def _keep_leases(self) -> None:
        """Renew the leases of the events in flight, every third of ``lease_seconds``.

        Real time on purpose (not the injectable sleep): it runs beside the step's requests.
        """
        lease = self.config.lease_seconds
        while True:
            await asyncio.sleep(lease * RENEW_FRACTION)
            held = sorted(self._inflight)
            if not held:
                continue
            try:
                kept = await asyncio.to_thread(self.outbox.renew, held, lease, self.clock())
            except Exception:
                self.log.exception("could not renew leases; retrying")
                continue
            lost = set(held) - kept
            lost &= self._inflight  # an outcome stored meanwhile is not a loss
            if lost:
                self._inflight.difference_update(lost)
                self._lost.update(lost)
                self.log.warning(
                    "lost the lease on events in flight; another forwarder has them",
                    extra={"events": len(lost)},
                )

    async def _give_back(self) -> None:
        """Unlease events whose outcome was never stored (an error or a cancelled send)."""
        seqs = sorted(self._inflight)
        self._inflight.clear()
        try:
            await asyncio.shield(asyncio.to_thread(self.outbox.unlease, seqs))
        except Exception:
            self.log.exception("could not give leased events back; they retry when the lease ends")

    async def _deliver(self, events: list[StoredEvent]) -> bool:
        """Send ``events`` and store each one's outcome; True when all were accepted."""
        if self._lost:  # another forwarder claimed these after this one's lease ran out
            events = [e for e in events if e.seq not in self._lost]
            if not events:
                return True
        if self.paused:
            # An earlier part of this batch paused the forwarder: keep the rest for later.
            await self._unlease(events)
            return False
        payloads = [e.payload for e in events]
        self.metrics.batch(len(events), batch_size(payloads))
        started = time.monotonic()
        try:
            result = await self.client.send(payloads, seed=batch_seed(events))
        except TooLarge as exc:
            self._count_failure(exc)
            await self._split(events, exc, _answer(exc.status, started))
        except BadRequest as exc:
            self._count_failure(exc)
            await self._isolate(events, exc, _answer(exc.status, started))
        except RateLimited as exc:
            self._count_failure(exc)
            # Retry-After can only lengthen the back-off: "0" or a date in the past from an
            # API that is rate-limiting must not turn the forwarder into a busy loop.
            wait = self.backoff(self._failures)
            if exc.retry_after is not None:
                wait = max(wait, min(exc.retry_after, MAX_RETRY_AFTER))
            self._failures += 1
            await self._release(events, self._pause(wait), str(exc), _answer(exc.status, started))
            self.log.warning(
                "event API rate limit; pausing the forwarder",
                extra={"retry_after": wait, "events": len(events)},
            )
        except Unauthorized as exc:
            self._count_failure(exc)
            self._failures += 1
            self._set_degraded(f"event API answered {exc.status}: {exc.error}")
            pause = self._pause(self.config.backoff_max)
            await self._release(events, pause, str(exc), _answer(exc.status, started))
            self.log.error(
                "ALARM: the Event API refuses the event key; holding every event until it is "
                "fixed (check INNGEST_EVENT_KEY or [inngest] event_key, and INNGEST_ENV)",
                extra={
                    "status": exc.status,
                    "error": exc.error,
                    "held": len(events),
                    "event_api": self.client.target.redacted_url,
                    "retry_in": self.config.backoff_max,
                },
            )
        except UnexpectedAnswer as exc:
            self._count_failure(exc)
            wait = self.backoff(self._failures)
            self._failures += 1
            self._set_degraded(str(exc))
            await self._release(events, self._pause(wait), str(exc), _answer(exc.status, started))
            self.log.error(
                "ALARM: the Event API URL answers something that is not the Event API; holding "
                "every event (check INNGEST_EVENT_API_BASE_URL / [inngest] base_url and proxies)",
                extra={
                    "status": exc.status,
                    "error": exc.error,
                    "held": len(events),
                    "event_api": self.client.target.redacted_url,
                    "retry_in": round(wait, 3),
                },
            )
        except SendError as exc:
            self._count_failure(exc)
            wait = self.backoff(self._failures)
            self._failures += 1
            await self._release(events, self._pause(wait), str(exc), _answer(exc.status, started))
            self.log.warning(
                "event API send failed; pausing the forwarder, will retry",
                extra={"error": str(exc), "events": len(events), "retry_in": round(wait, 3)},
            )
        else:
            self.metrics.attempt("2xx")
            self._failures = 0
            if self.degraded:
                self.log.info("the Event API accepts events again", extra={"was": self.degraded})
                self.degraded = None
                self.metrics.set_degraded(False)
            await self._ack(events, _answer(result.status, started))
            return True
        return False

    async def _split(self, events: list[StoredEvent], exc: TooLarge, answer: Answer) -> None:
        accepted = min(exc.accepted, len(events))
        if accepted:
            await self._ack(events[:accepted], answer)
        rest = events[accepted:]
        if len(rest) == 1:
            await self._dead_letter(rest[0], f"event API: too large: {exc.error}", answer)
        elif rest:
            await self._halves(rest)

    async def _isolate(self, events: list[StoredEvent], exc: BadRequest, answer: Answer) -> None:
        accepted = min(exc.accepted, len(events))
        if accepted:
            await self._ack(events[:accepted], answer)
        rest = events[accepted:]
        if not rest:
            self.log.warning("event API answered 400 but listed every event as accepted")
        elif len(rest) == 1:
            await self._dead_letter(rest[0], f"event API: {exc.error}", answer)
        elif await self._deliver(rest[:1]):
            # The API stops at the first bad event, so rest[0] was the suspect; it passed alone,
            # so the API's count was short (it can be, when it cancels work in flight).
            await self._halves(rest[1:])
        else:
            await self._deliver(rest[1:])

    async def _halves(self, events: list[StoredEvent]) -> None:
        half = max(1, len(events) // 2)
        await self._deliver(events[:half])
        if events[half:]:
            await self._deliver(events[half:])

    # -- outbox writes ------------------------------------------------------------------------

    async def _ack(self, events: Sequence[StoredEvent], answer: Answer) -> None:
        seqs = [e.seq for e in events]
        await asyncio.to_thread(functools.partial(self.outbox.ack, seqs, answer=answer))
        self._inflight.difference_update(seqs)
        self.metrics.forwarded_events(len(seqs))

    async def _release(
        self, events: Sequence[StoredEvent], retry_at: float, error: str, answer: Answer
    ) -> None:
        seqs = [e.seq for e in events]
        release = functools.partial(self.outbox.release, retry_at=retry_at, error=error)
        await asyncio.to_thread(release, seqs, answer=answer)
        self._inflight.difference_update(seqs)

    async def _unlease(self, events: Sequence[StoredEvent]) -> None:
        seqs = [e.seq for e in events]
        await asyncio.to_thread(self.outbox.unlease, seqs)
        self._inflight.difference_update(seqs)

    async def _dead_letter(
        self, event: StoredEvent, error: str, answer: Answer | None = None
    ) -> None:
        await asyncio.to_thread(
            functools.partial(self.outbox.dead_letter, event.seq, error, answer=answer)
        )
        self._inflight.discard(event.seq)
        self.metrics.dead_lettered(1)
        self.log.error(
            "event dead-lettered",
            extra={
                "seq": event.seq,
                "event_name": event.name,
                "event_id": event.event_id,
                "error": error,
            },
        )

    def _set_degraded(self, reason: str) -> None:
        self.degraded = reason
        self.metrics.set_degraded(True)

    def _count_failure(self, exc: SendError) -> None:
        status_class = (
            str(exc.status) if exc.status in (401, 403, 404, 413, 429) else exc.status_class
        )
        self.metrics.attempt(status_class)
        self.metrics.failure(status_class)


def _answer(status: int, started: float) -> Answer:
    """The API's answer to a request sent at ``started`` (``time.monotonic()``)."""
    return Answer(status, round((time.monotonic() - started) * 1000, 3))
