"""Drain the outbox into the Event API: batching, retries, splitting, dead letters.

Policy by outcome of a batch:

- accepted: ack every event.
- network error or 5xx: release every event and pause the forwarder for an exponential back-off
  with full jitter (``backoff_base * 2**attempts``, capped at ``backoff_max``). Never dropped;
  the batch goes first again when the pause ends, so order is kept through an outage.
- 429: release, and pause the whole forwarder for ``Retry-After`` (or the back-off).
- 413 / oversize 400: split the batch in halves; a single event too large is dead-lettered.
- other 400: ack the events the API accepted before the bad one, then bisect the rest to isolate
  the poison event, dead-letter it with the API's error, deliver the others.
- 401/403/404: release everything, mark the gateway degraded, log an alarm, retry after the
  back-off cap. Cleared by the next accepted batch.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
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
)
from gateway.logs import get_logger
from gateway.outbox import Outbox, StoredEvent

_ARRAY_OVERHEAD = 2  # "[" and "]"; commas are counted per event


class ForwarderMetrics(Protocol):
    """What the forwarder reports; :class:`gateway.metrics.Metrics` implements it."""

    def forwarded_events(self, n: int) -> None: ...
    def attempt(self, status_class: str) -> None: ...
    def failure(self, status_class: str) -> None: ...
    def batch(self, size_events: int, size_bytes: int) -> None: ...
    def dead_lettered(self, n: int) -> None: ...
    def set_degraded(self, degraded: bool) -> None: ...


class NullMetrics:
    """Reports nothing."""

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


def event_id_seed(events: Sequence[StoredEvent]) -> str:
    """A stable ``x-inngest-event-id-seed`` for a stored batch: a resend gets the same ids."""
    digest = hashlib.sha256(",".join(str(e.seq) for e in events).encode()).digest()
    millis = int(events[0].created_at * 1000)
    return f"{millis},{base64.b64encode(digest[:10]).decode()}"


class Forwarder:
    """Background task that delivers the outbox's events in batches."""

    def __init__(
        self,
        outbox: Outbox,
        client: EventApiClient,
        config: ForwarderConfig,
        *,
        metrics: ForwarderMetrics | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        retention: float = 3 * 86400.0,
    ) -> None:
        self.outbox = outbox
        self.client = client
        self.config = config
        self.metrics = metrics or NullMetrics()
        self.clock = clock
        self.sleep = sleep
        self.rng = rng
        self.retention = retention
        self._next_prune = 0.0
        self.degraded: str | None = None
        self.paused_until = 0.0
        self._wake = asyncio.Event()
        self.log = get_logger()

    def notify(self) -> None:
        """New events were stored: start a batch now instead of at the next poll."""
        self._wake.set()

    def backoff(self, attempts: int) -> float:
        """Full-jitter exponential back-off for an event tried ``attempts`` times."""
        cap = min(self.config.backoff_max, self.config.backoff_base * (2 ** min(attempts, 30)))
        return float(cap * (0.5 + self.rng() / 2))

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set."""
        while not stop.is_set():
            try:
                pause = self.paused_until - self.clock()
                if pause > 0:
                    await self._wait(stop, min(pause, self.config.idle_poll))
                    continue
                sent = await self.step()
                await self._maybe_prune()
            except Exception:
                self.log.exception("forwarder error; backing off")
                await self._wait(stop, self.config.backoff_max)
                continue
            if not sent:
                await self._wait(stop, self.config.idle_poll)

    async def _maybe_prune(self) -> None:
        now = self.clock()
        if now >= self._next_prune:
            self._next_prune = now + 60.0
            await asyncio.to_thread(self.outbox.prune, now - self.retention)

    async def _wait(self, stop: asyncio.Event, seconds: float) -> None:
        self._wake.clear()
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def step(self) -> int:
        """Claim and send one batch; returns how many events were claimed."""
        batch = await asyncio.to_thread(
            self.outbox.claim,
            max_events=self.config.max_batch_events,
            max_bytes=self.config.max_batch_bytes - _ARRAY_OVERHEAD,
            lease_seconds=self.config.lease_seconds,
        )
        if not batch:
            return 0
        sendable = []
        for event in batch:
            if len(event.payload) > self.config.max_event_bytes:
                await self._dead_letter(
                    event,
                    f"event is {len(event.payload)} bytes, over the per-event limit of "
                    f"{self.config.max_event_bytes}",
                )
            else:
                sendable.append(event)
        if sendable:
            await self._deliver(sendable)
        return len(batch)

    async def _deliver(self, events: list[StoredEvent]) -> None:
        size = sum(len(e.payload) + 1 for e in events) + 1
        self.metrics.batch(len(events), size)
        try:
            await self.client.send([e.payload for e in events], seed=event_id_seed(events))
        except TooLarge as exc:
            self._count_failure(exc)
            if len(events) == 1:
                await self._dead_letter(events[0], f"event API: too large: {exc.error}")
                return
            half = len(events) // 2
            await self._deliver(events[:half])
            await self._deliver(events[half:])
            return
        except BadRequest as exc:
            self._count_failure(exc)
            await self._isolate(events, exc)
            return
        except RateLimited as exc:
            self._count_failure(exc)
            wait = (
                exc.retry_after if exc.retry_after is not None else self.backoff(events[0].attempts)
            )
            self.paused_until = self.clock() + wait
            await self._release(events, self.paused_until, str(exc))
            self.log.warning(
                "event API rate limit; pausing", extra={"retry_after": wait, "events": len(events)}
            )
            return
        except Unauthorized as exc:
            self._count_failure(exc)
            self.degraded = f"event API answered {exc.status}: {exc.error}"
            self.metrics.set_degraded(True)
            retry_at = self.clock() + self.config.backoff_max
            self.paused_until = retry_at
            await self._release(events, retry_at, str(exc))
            self.log.error(
                "ALARM: the event API refuses the event key; holding every event until fixed",
                extra={
                    "status": exc.status,
                    "error": exc.error,
                    "held": len(events),
                    "url": self.client.target.redacted_url,
                },
            )
            return
        except SendError as exc:
            self._count_failure(exc)
            retry_at = self.clock() + self.backoff(events[0].attempts)
            # The API, not the batch, is failing: pause everything so no request is wasted
            # and the batch goes first (in order) when the pause ends.
            self.paused_until = retry_at
            await self._release(events, retry_at, str(exc))
            self.log.warning(
                "event API send failed; will retry",
                extra={
                    "error": str(exc),
                    "events": len(events),
                    "retry_in": round(retry_at - self.clock(), 3),
                },
            )
            return
        self.metrics.attempt("2xx")
        if self.degraded:
            self.log.info("event API accepts the key again", extra={"was": self.degraded})
        self.degraded = None
        self.metrics.set_degraded(False)
        await asyncio.to_thread(self.outbox.ack, [e.seq for e in events])
        self.metrics.forwarded_events(len(events))

    async def _isolate(self, events: list[StoredEvent], exc: BadRequest) -> None:
        accepted = max(0, min(exc.accepted, len(events) - 1))
        if accepted:
            await asyncio.to_thread(self.outbox.ack, [e.seq for e in events[:accepted]])
            self.metrics.forwarded_events(accepted)
        rest = events[accepted:]
        if len(rest) == 1:
            await self._dead_letter(rest[0], f"event API: {exc.error}")
            return
        if accepted:
            # The API names the first bad event: it is rest[0]; the others may be fine.
            await self._dead_letter(rest[0], f"event API: {exc.error}")
            await self._deliver(rest[1:])
            return
        half = len(rest) // 2
        await self._deliver(rest[:half])
        await self._deliver(rest[half:])

    async def _dead_letter(self, event: StoredEvent, error: str) -> None:
        await asyncio.to_thread(self.outbox.dead_letter, event.seq, error)
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

    async def _release(self, events: list[StoredEvent], retry_at: float, error: str) -> None:
        await asyncio.to_thread(
            self.outbox.release, [e.seq for e in events], retry_at=retry_at, error=error
        )

    def _count_failure(self, exc: SendError) -> None:
        status_class = (
            str(exc.status) if exc.status in (401, 403, 404, 413, 429) else (exc.status_class)
        )
        self.metrics.attempt(status_class)
        self.metrics.failure(status_class)

    async def drain(self, deadline: float) -> int:
        """Send due events until none are due or ``deadline`` (Unix time) passes."""
        sent = 0
        while self.clock() < deadline and self.paused_until <= self.clock():
            remaining = deadline - self.clock()
            try:
                claimed = await asyncio.wait_for(self.step(), timeout=max(0.1, remaining))
            except TimeoutError:
                break
            except Exception:
                self.log.exception("forwarder error during drain")
                break
            if not claimed:
                break
            sent += claimed
        return sent
